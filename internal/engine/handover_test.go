package engine_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

// handOver calls HandOver until it is done, the way the reconciler does on every look.
func handOver(t *testing.T, r *engine.Runner, key runner.Key) {
	t.Helper()
	require.Eventually(t, func() bool {
		done, err := r.HandOver(key)
		require.NoError(t, err)
		return done
	}, waitFor, tick, "%s was never handed over", key)
}

// handOverNoted is handOver for a test whose sink checks chains: the key may start again.
func (e *env) handOverNoted(t *testing.T, key runner.Key) {
	t.Helper()
	handOver(t, e.r, key)
	e.sink.handedOver(key)
}

// TestHandOverEndsTheRunSilently: a run handed over to another process (a task moving to
// another replica) stops at its next pause point, a paused or queued one at once; nothing is
// reported and Post is not called (the record keeps the task as it was, and its next owner
// resumes it), its slot goes to the next task in line, and the entry is gone once its goroutine
// returned.
func TestHandOverEndsTheRunSilently(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = 1 })
	e.start(t, "running", "loop")
	e.waitState(t, "running", lifecycle.Running)
	e.start(t, "queued", "loop")
	e.waitState(t, "queued", lifecycle.Pending)
	before := e.sink.count()

	handOver(t, e.r, "queued")
	require.True(t, errors.Is(e.h.loopErrOf("queued"), nil), "a queued run never reached Run")
	e.handOverNoted(t, "running")
	require.ErrorIs(t, e.h.loopErrOf("running"), runner.ErrHandedOver, "the task's Yield returns the cause")
	_, ok := e.r.Snapshot("running")
	require.False(t, ok, "a handed-over run is forgotten")
	time.Sleep(20 * time.Millisecond) // a wrongly reporting run would have reported by now
	require.Equal(t, before, e.sink.count(), "nothing is reported for a handed-over run")
	require.Empty(t, e.h.outcomesOf("running"), "Post is not called: the run goes on elsewhere")
	require.Zero(t, e.r.Stats().Running+e.r.Stats().Pending, "no run is counted any more")
	require.Zero(t, e.r.Stats().SlotsInUse, "the slot is free")

	// A paused run, and a key that was handed over before, start again as usual.
	e.start(t, "paused", "loop")
	e.waitState(t, "paused", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("paused"))
	e.waitState(t, "paused", lifecycle.Paused)
	handOver(t, e.r, "paused")
	require.ErrorIs(t, e.h.loopErrOf("paused"), runner.ErrHandedOver)
	require.Zero(t, e.r.Stats().Paused)
	e.start(t, "running", "loop")
	e.waitState(t, "running", lifecycle.Running)
	done, err := e.r.HandOver("unknown")
	require.NoError(t, err)
	require.True(t, done, "an unknown key has nothing to hand over")
}

// TestHandOverWaitsForATaskThatIgnoresCancellation: the run is not done while its code may
// still be doing work, however long that takes, so it never runs in two places at once.
func TestHandOverWaitsForATaskThatIgnoresCancellation(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.StopGrace = 10 * time.Millisecond })
	e.start(t, "stuck", "stuck")
	e.waitState(t, "stuck", lifecycle.Running)
	done, err := e.r.HandOver("stuck")
	require.NoError(t, err)
	require.False(t, done)
	time.Sleep(50 * time.Millisecond) // well past the stop grace
	done, err = e.r.HandOver("stuck")
	require.NoError(t, err)
	require.False(t, done, "still running its code")
	close(e.h.unstuck)
	handOver(t, e.r, "stuck")
	require.Empty(t, e.sink.states("stuck")[1:], "only its start was reported")
}
