package schedule

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/engine"
)

// FiringSpanName is the span of one child's creation by a schedule; the child's runs are its
// children (through the child's traceparent annotation).
const FiringSpanName = "taskpilot.fire"

// startFiring opens the firing's span and writes its traceparent on the child. A retried create
// of the same slot is a new span: the child that exists names the first one.
func (s *Scheduler) startFiring(ctx context.Context, ts *v1alpha1.TaskSchedule, bt *v1alpha1.BackgroundTask, slot time.Time, manual bool) (context.Context, trace.Span) {
	ctx, span := s.tracer.Start(ctx, FiringSpanName+" "+ts.Name, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "taskpilot"),
			attribute.String("messaging.operation.type", "create"),
			engine.AttrTaskNamespace.String(ts.Namespace),
			engine.AttrTaskName.String(bt.Name),
			engine.AttrTaskType.String(bt.Spec.TaskName),
			attribute.String("taskpilot.schedule", ts.Name),
			attribute.String("taskpilot.slot", slot.UTC().Format(time.RFC3339)),
			attribute.Bool("taskpilot.manual", manual),
		))
	if tp := engine.TraceParent(span.SpanContext()); tp != "" {
		bt.Annotations[v1alpha1.AnnotationTraceParent] = tp
	}
	return ctx, span
}

func endFiring(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
