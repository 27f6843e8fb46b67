package engine

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/runner"
)

// SpanName is the name of an execution's span: one per run of an attempt in one process, from
// its admission to its end here (terminal, handed over, shut down).
const SpanName = "taskpilot.run"

// Attribute keys of an execution's span, in the spirit of the OpenTelemetry messaging
// conventions (a task is a message this process consumes) and otelriver.
const (
	AttrTaskNamespace = attribute.Key("k8s.namespace.name")
	AttrTaskName      = attribute.Key("taskpilot.task.name")
	AttrTaskUID       = attribute.Key("taskpilot.task.uid")
	AttrTaskType      = attribute.Key("taskpilot.task.type")
	AttrAttempt       = attribute.Key("taskpilot.attempt")
	AttrOutcome       = attribute.Key("taskpilot.outcome")
	AttrReason        = attribute.Key("taskpilot.reason")
	AttrResumed       = attribute.Key("taskpilot.resumed")
)

// Span event names.
const (
	EventQueued     = "queued"
	EventPaused     = "pause"
	EventResumed    = "resume"
	EventCheckpoint = "checkpoint"
	EventHandOver   = "hand-over"
)

// Outcomes of an execution that reported no terminal status here.
const (
	OutcomeHandedOver = "HandedOver"
	OutcomeShutdown   = "Shutdown"
	OutcomeLeaseLost  = "LeaseLost"
)

// startSpan opens the execution's span when the runner traces: a child of the creator's span
// (StartSpec.Parent, remote) and linked to the task's earlier execution (StartSpec.Previous), so
// a run resumed after a crash or a move is a new span in the creator's trace. It returns ctx
// with the span, so spans the task makes are its children, and the span's W3C traceparent.
func (r *Runner) startSpan(ctx context.Context, key Key, spec StartSpec) (context.Context, trace.Span, string) {
	if r.opts.Tracer == nil {
		return ctx, nil, ""
	}
	if spec.Parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, spec.Parent)
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "taskpilot"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.message.id", string(key)),
			AttrTaskNamespace.String(spec.Namespace),
			AttrTaskName.String(spec.Name),
			AttrTaskUID.String(string(key)),
			AttrTaskType.String(spec.TaskName),
			AttrAttempt.Int(spec.Attempt),
			AttrResumed.Bool(len(spec.Checkpoint) > 0),
		),
	}
	if spec.Previous.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: spec.Previous,
			Attributes: []attribute.KeyValue{attribute.String("taskpilot.link", "previous execution")}}))
	}
	ctx, span := r.opts.Tracer.Start(ctx, SpanName+" "+spec.TaskName, opts...)
	return ctx, span, TraceParent(span.SpanContext())
}

// spanTransitionLocked notes a state change on the execution's span and ends it at a terminal
// status.
func (e *entry) spanTransitionLocked(from, to lifecycle.Status, reason, msg string) {
	if e.span == nil {
		return
	}
	switch {
	case to == lifecycle.Pending:
		e.span.AddEvent(EventQueued, trace.WithAttributes(attribute.String("message", msg)))
	case to == lifecycle.Paused:
		e.span.AddEvent(EventPaused)
	case to == lifecycle.Running && from == lifecycle.Paused:
		e.span.AddEvent(EventResumed)
	case to.Terminal():
		e.span.SetAttributes(AttrOutcome.String(to.Phase()), AttrReason.String(reason))
		if to == lifecycle.Failed {
			e.span.SetStatus(codes.Error, msg)
		}
		e.span.End()
		e.spanEnded = true
	}
}

// endSpanUnreportedLocked ends the span of an execution that ends here without a reported
// terminal status: handed over, shut down or fenced by a lost lease (its next owner's span
// links to it).
func (e *entry) endSpanUnreportedLocked(cause error) {
	if e.span == nil || e.spanEnded {
		return
	}
	e.spanEnded = true
	outcome := OutcomeShutdown
	switch {
	case errors.Is(cause, runner.ErrHandedOver):
		outcome = OutcomeHandedOver
	case errors.Is(cause, runner.ErrLeaseLost):
		outcome = OutcomeLeaseLost
	}
	e.span.SetAttributes(AttrOutcome.String(outcome))
	e.span.End()
}

// TraceParent formats sc as a W3C traceparent header value ("" when sc is invalid).
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return carrier.Get("traceparent")
}

// ParseTraceParent reads a W3C traceparent header value; an empty or malformed one gives an
// invalid span context (the run then starts a trace of its own).
func ParseTraceParent(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": s})
	return trace.SpanContextFromContext(ctx)
}
