package sharding_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/otlptest"
	"github.com/taskpilot/taskpilot/test/witness"
)

// TestOneTraceFromTheRequestToTheRunAcrossAKill follows one task from the request that
// enqueued it to its end, with the spans the operator processes export to a real OTLP receiver:
// the task is enqueued through the typed client inside the request's span, paused and resumed,
// its replica is killed (SIGKILL: that execution's span is never exported, only its ID is in
// the row), and the other replica resumes it from its checkpoint, pauses and resumes it again
// and finishes it. The second execution is a child of the request's span, linked to the first.
func TestOneTraceFromTheRequestToTheRunAcrossAKill(t *testing.T) {
	w := newWorld(t)
	rcv := otlptest.Start(t)
	otel := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.Endpoint, "OTEL_EXPORTER_OTLP_INSECURE=true", "OTEL_BSP_SCHEDULE_DELAY=200"}
	w.startWith("r-a", otel...)
	w.startWith("r-b", otel...)
	w.waitRing(2)

	cli, err := operator.NewClient(w.ctx, kube.Config, operator.ClientOptions{Namespace: w.ns})
	require.NoError(t, err)
	t.Cleanup(cli.Close)
	// The request's own tracer: it exports nothing, it only makes the span the task continues.
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reqCtx, request := tp.Tracer("request").Start(w.ctx, "POST /reindex")
	params := witness.Params{Steps: 60, Interval: runner.Duration(200 * time.Millisecond), CheckpointEvery: 1}
	bt, created, err := cli.Enqueue(reqCtx, "traced", params)
	request.End()
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, engine.TraceParent(request.SpanContext()), bt.Annotations[v1alpha1.AnnotationTraceParent],
		"the client writes the request's span on the task")

	wait := func(phase v1alpha1.Phase) {
		t.Helper()
		ctx, cancel := context.WithTimeout(w.ctx, waitTimeout)
		defer cancel()
		_, err := cli.Wait(ctx, "traced", phase)
		require.NoError(t, err, "waiting for %s", phase)
	}
	pauseResume := func() {
		t.Helper()
		require.NoError(t, cli.Pause(w.ctx, "traced"))
		wait(v1alpha1.PhasePaused)
		require.NoError(t, cli.Resume(w.ctx, "traced"))
		wait(v1alpha1.PhaseRunning)
	}
	wait(v1alpha1.PhaseRunning)
	pauseResume()

	// The first execution's span, as its row names it, and the replica that runs it.
	var first, owner string
	require.Eventually(t, func() bool {
		err := w.db.QueryRow(w.ctx, `SELECT run_span, coalesce(owner, '') FROM background_tasks WHERE uid = $1`, string(bt.UID)).Scan(&first, &owner)
		return err == nil && first != "" && owner != ""
	}, waitTimeout, 100*time.Millisecond)
	firstSpan := engine.ParseTraceParent(first)
	require.Equal(t, request.SpanContext().TraceID(), firstSpan.TraceID(), "the first execution is in the request's trace")
	w.waitAdvanced([]string{"traced"}, nil, 3) // checkpoints to resume from
	survivor := map[string]string{"r-a": "r-b", "r-b": "r-a"}[owner]
	require.NotEmpty(t, survivor, "owned by %q", owner)
	require.NoError(t, w.replicas[owner].Kill())

	require.Eventually(t, func() bool {
		var now string
		err := w.db.QueryRow(w.ctx, `SELECT coalesce(owner, '') FROM background_tasks WHERE uid = $1`, string(bt.UID)).Scan(&now)
		return err == nil && now == survivor
	}, waitTimeout, 100*time.Millisecond, "the survivor takes the task over")
	wait(v1alpha1.PhaseRunning)
	pauseResume()
	wait(v1alpha1.PhaseFinished)

	run := rcv.WaitFor(t, 30*time.Second, "of the finished execution", func(s otlptest.Span) bool {
		return s.Attr("taskpilot.task.uid") == string(bt.UID) && s.Attr("taskpilot.outcome") == "Finished"
	})
	require.Equal(t, "taskpilot.run "+witness.TaskType, run.Name())
	require.Equal(t, request.SpanContext().TraceID(), trace.TraceID(run.TraceID()), "one trace from the request to the run")
	require.Equal(t, request.SpanContext().SpanID(), trace.SpanID(run.ParentSpanID()), "the run is the request span's child")
	require.Equal(t, 1, run.Links().Len(), "linked to the execution that was killed")
	require.Equal(t, firstSpan.SpanID(), trace.SpanID(run.Links().At(0).SpanID()))
	require.NotEqual(t, firstSpan.SpanID(), trace.SpanID(run.SpanID()), "a new execution is a new span")
	require.Equal(t, survivor, run.ResourceAttr("service.instance.id"))
	require.Equal(t, "taskpilot", run.ResourceAttr("service.name"))
	require.Equal(t, w.ns, run.Attr("k8s.namespace.name"))
	require.Equal(t, "traced", run.Attr("taskpilot.task.name"))
	require.Equal(t, witness.TaskType, run.Attr("taskpilot.task.type"))
	require.Equal(t, "1", run.Attr("taskpilot.attempt"))
	require.Equal(t, "true", run.Attr("taskpilot.resumed"), "resumed from the killed execution's checkpoint")
	require.Equal(t, "Completed", run.Attr("taskpilot.reason"))
	events := run.EventNames()
	require.Contains(t, events, "checkpoint")
	p := slices.Index(events, "pause")
	require.GreaterOrEqual(t, p, 0, "events %v", events)
	require.Equal(t, "resume", events[p+1], "events %v", events)

	var last string
	require.NoError(t, w.db.QueryRow(w.ctx, `SELECT run_span FROM background_tasks WHERE uid = $1`, string(bt.UID)).Scan(&last))
	require.Equal(t, trace.SpanID(run.SpanID()), engine.ParseTraceParent(last).SpanID(), "the row names the latest execution")
	for _, s := range rcv.Spans() {
		require.NotEqual(t, firstSpan.SpanID(), trace.SpanID(s.SpanID()), "a killed execution's span is never exported")
	}
}
