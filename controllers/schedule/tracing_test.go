package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/engine"
)

// A child created for a slot carries its firing's span, so the child's runs are in the
// firing's trace; without a tracer it carries none.
func TestAChildCarriesItsFiringsSpan(t *testing.T) {
	scheme := runtime.NewScheme()
	require.NoError(t, v1alpha1.AddToScheme(scheme))
	ts := &v1alpha1.TaskSchedule{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "team", UID: "s-uid"},
		Spec: v1alpha1.TaskScheduleSpec{Schedule: "@daily", Template: v1alpha1.TaskTemplate{Spec: v1alpha1.BackgroundTaskSpec{TaskName: "report"}}}}
	slot := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	s := &Scheduler{client: c, api: c, tracer: tp.Tracer("test")}

	_, err := s.createChild(context.Background(), ts, "nightly-1", slot, false)
	require.NoError(t, err)
	var child v1alpha1.BackgroundTask
	require.NoError(t, c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: "nightly-1"}, &child))
	require.Len(t, rec.Ended(), 1)
	span := rec.Ended()[0]
	require.Equal(t, "taskpilot.fire nightly", span.Name())
	require.Equal(t, trace.SpanKindProducer, span.SpanKind())
	require.Equal(t, engine.TraceParent(span.SpanContext()), child.Annotations[v1alpha1.AnnotationTraceParent])

	s.tracer = nil
	_, err = s.createChild(context.Background(), ts, "nightly-2", slot.Add(24*time.Hour), false)
	require.NoError(t, err)
	require.NoError(t, c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: "nightly-2"}, &child))
	require.NotContains(t, child.Annotations, v1alpha1.AnnotationTraceParent)
}
