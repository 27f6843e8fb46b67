package engine_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

// fakeLease is valid until expired is set.
type fakeLease struct{ expired atomic.Bool }

func (l *fakeLease) Valid() bool { return !l.expired.Load() }

// TestLeaseLostStopsEverythingSilently: once the membership lease may have expired, a running
// task stops at its next pause point and a paused one wakes up with ErrLeaseLost, nothing is
// reported (another process may own the tasks now; only it records their transitions), Post
// is not called, nothing new starts, and a lease that looks valid again does not bring the
// runner back.
func TestLeaseLostStopsEverythingSilently(t *testing.T) {
	lease := &fakeLease{}
	e := newEnv(t, func(o *engine.Options) { o.Lease = lease })
	e.start(t, "running", "loop")
	e.start(t, "paused", "loop")
	e.waitState(t, "running", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("paused"))
	e.waitState(t, "paused", lifecycle.Paused)
	before := e.sink.count()

	lease.expired.Store(true)
	require.Eventually(t, func() bool {
		return errors.Is(e.h.loopErrOf("running"), runner.ErrLeaseLost)
	}, waitFor, tick, "the running task's Yield notices the lost lease by itself")
	require.Eventually(t, func() bool {
		return errors.Is(e.h.loopErrOf("paused"), runner.ErrLeaseLost)
	}, waitFor, tick, "the paused task is released with ErrLeaseLost")
	require.ErrorIs(t, e.r.StartTask("c", probeSpec("quick", "c")), runner.ErrLeaseLost)
	lease.expired.Store(false)
	require.ErrorIs(t, e.r.StartTask("c", probeSpec("quick", "c")), runner.ErrLeaseLost, "lost for good")
	time.Sleep(20 * time.Millisecond) // a wrongly reporting run would have reported by now
	require.Equal(t, before, e.sink.count(), "nothing is reported after the lease is lost")
	require.Empty(t, e.h.outcomesOf("running"), "Post is not called: the run is not over, its next owner resumes it")
	require.Zero(t, e.h.runsOf("c"))
}
