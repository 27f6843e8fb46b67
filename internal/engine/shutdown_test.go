package engine_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

func TestShutdownReportsNothingAndLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = 2 })
	e.start(t, "paused", "loop")
	e.waitState(t, "paused", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("paused"))
	e.waitState(t, "paused", lifecycle.Paused)
	e.start(t, "run1", "loop")
	e.start(t, "run2", "loop")
	e.waitState(t, "run2", lifecycle.Running)
	e.start(t, "pending", "loop")
	e.waitState(t, "pending", lifecycle.Pending)
	e.waitState(t, "run1", lifecycle.Running)

	// Every task is in a stable state, so nothing is in flight: whatever
	// was reported before the cancel is all there will ever be, even though
	// the shutdown frees slots a Pending task could be granted.
	before := e.sink.count()
	e.stop()
	require.Equal(t, before, e.sink.count(), "shutdown reports no transition")
	for _, k := range []runner.Key{"paused", "run1", "run2", "pending"} {
		for _, tr := range e.sink.of(k) {
			require.False(t, tr.To.Terminal(), "shutdown must not report a terminal state for %s", k)
		}
		require.Empty(t, e.h.outcomesOf(k), "Post is not called on shutdown")
	}
	require.ErrorIs(t, e.r.ResumeTask("paused"), runner.ErrShutdown)
}
