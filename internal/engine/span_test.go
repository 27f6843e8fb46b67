package engine_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

// tracedEnv is a runner whose spans land in the returned recorder.
func tracedEnv(t *testing.T) (*env, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := newEnv(t, func(o *engine.Options) {
		o.Tracer = tp.Tracer("test")
		require.NoError(t, registerRaw[innerSpanName](o.Registry, func(json.RawMessage) (runner.Task[json.RawMessage], error) {
			return innerSpanTask{}, nil
		}))
	})
	return e, rec
}

// innerSpanTask makes a span of its own from its ctx, as task code does.
type innerSpanTask struct{ runner.Base }

type innerSpanName struct{}

func (innerSpanName) name() string { return "inner-span" }

func (innerSpanTask) Run(ctx context.Context, _ runner.Control) (json.RawMessage, error) {
	_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("task").Start(ctx, "task work")
	span.End()
	return nil, nil
}

func remoteSpan(t *testing.T, traceHex, spanHex string) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceHex)
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex(spanHex)
	require.NoError(t, err)
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

func endedSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == name {
				found = s
				return true
			}
		}
		return false
	}, waitFor, tick, "no ended span %q", name)
	return found
}

func attrs(s sdktrace.ReadOnlySpan) map[string]any {
	out := map[string]any{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.AsInterface()
	}
	return out
}

func eventNames(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, ev := range s.Events() {
		out = append(out, ev.Name)
	}
	return out
}

// An execution's span is a child of the creator's span, links to the previous execution, notes
// checkpoint, pause and resume, ends with the outcome, and its traceparent goes with every
// transition.
func TestAnExecutionIsOneSpanInItsCreatorsTrace(t *testing.T) {
	e, rec := tracedEnv(t)
	parent := remoteSpan(t, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
	previous := remoteSpan(t, "0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7")
	spec := probeSpec("checkpoint", "a")
	spec.Namespace, spec.Name, spec.Parent, spec.Previous = "team", "reindex", parent, previous
	require.NoError(t, e.r.StartTask("a", spec))
	require.Eventually(t, func() bool { return len(e.saver.get("a")) == 1 }, waitFor, tick)
	require.NoError(t, e.r.PauseTask("a"))
	e.waitState(t, "a", lifecycle.Paused)
	require.NoError(t, e.r.ResumeTask("a"))
	e.waitState(t, "a", lifecycle.Running)
	e.h.release("a")
	finished := e.sink.waitTo(t, "a", lifecycle.Finished)

	span := endedSpan(t, rec, "taskpilot.run probe")
	require.Equal(t, parent.TraceID(), span.SpanContext().TraceID(), "the run is in its creator's trace")
	require.Equal(t, parent.SpanID(), span.Parent().SpanID(), "the run's span is the creator span's child")
	require.Equal(t, trace.SpanKindConsumer, span.SpanKind())
	require.Len(t, span.Links(), 1)
	require.Equal(t, previous.SpanID(), span.Links()[0].SpanContext.SpanID(), "linked to the earlier execution")
	require.Equal(t, []string{"checkpoint", "pause", "resume"}, eventNames(span))
	a := attrs(span)
	require.Equal(t, "team", a["k8s.namespace.name"])
	require.Equal(t, "reindex", a["taskpilot.task.name"])
	require.Equal(t, "a", a["taskpilot.task.uid"])
	require.Equal(t, "probe", a["taskpilot.task.type"])
	require.Equal(t, int64(1), a["taskpilot.attempt"])
	require.Equal(t, "Finished", a["taskpilot.outcome"])
	require.Equal(t, lifecycle.ReasonCompleted, a["taskpilot.reason"])
	require.Equal(t, engine.TraceParent(span.SpanContext()), finished.Span, "transitions carry the execution's traceparent")
	for _, tr := range e.sink.of("a") {
		require.Equal(t, finished.Span, tr.Span, "every transition of the execution names its span")
	}
}

func TestSpansTheTaskMakesAreChildrenOfItsExecution(t *testing.T) {
	e, rec := tracedEnv(t)
	require.NoError(t, e.r.StartTask("i", engine.StartSpec{TaskName: "inner-span", Attempt: 1}))
	e.sink.waitTo(t, "i", lifecycle.Finished)
	run := endedSpan(t, rec, "taskpilot.run inner-span")
	inner := endedSpan(t, rec, "task work")
	require.Equal(t, run.SpanContext().SpanID(), inner.Parent().SpanID())
	require.False(t, run.Parent().IsValid(), "no creator: the run starts its own trace")
	require.Empty(t, run.Links())
}

func TestAFailedExecutionsSpanIsAnError(t *testing.T) {
	e, rec := tracedEnv(t)
	e.start(t, "f", "fail")
	e.sink.waitTo(t, "f", lifecycle.Failed)
	span := endedSpan(t, rec, "taskpilot.run probe")
	require.Equal(t, codes.Error, span.Status().Code)
	require.Equal(t, "boom", span.Status().Description)
	require.Equal(t, "Failed", attrs(span)["taskpilot.outcome"])
}

// A run handed over (or shut down) reports nothing, but its span ends here, saying so.
func TestAHandedOverExecutionsSpanEndsHere(t *testing.T) {
	e, rec := tracedEnv(t)
	e.start(t, "h", "loop")
	e.waitState(t, "h", lifecycle.Running)
	e.handOverNoted(t, "h")
	span := endedSpan(t, rec, "taskpilot.run probe")
	require.Equal(t, engine.OutcomeHandedOver, attrs(span)["taskpilot.outcome"])
	require.Equal(t, []string{"hand-over"}, eventNames(span))

	e.start(t, "s", "loop")
	e.waitState(t, "s", lifecycle.Running)
	e.stop()
	require.Eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if attrs(s)["taskpilot.task.uid"] == "s" {
				return attrs(s)["taskpilot.outcome"] == engine.OutcomeShutdown
			}
		}
		return false
	}, waitFor, tick)
}

func TestTraceParentRoundTrips(t *testing.T) {
	sc := remoteSpan(t, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
	tp := engine.TraceParent(sc)
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tp)
	back := engine.ParseTraceParent(tp)
	require.Equal(t, sc.TraceID(), back.TraceID())
	require.Equal(t, sc.SpanID(), back.SpanID())
	for _, bad := range []string{"", "nonsense", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		require.False(t, engine.ParseTraceParent(bad).IsValid(), "%q", bad)
	}
	require.Empty(t, engine.TraceParent(trace.SpanContext{}))
}
