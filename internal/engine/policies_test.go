package engine_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

func sizedSpec(mode, id string, bytes int64) engine.StartSpec {
	return engine.StartSpec{TaskName: "probe", Attempt: 1,
		Params: json.RawMessage(fmt.Sprintf(`{"mode":%q,"id":%q,"bytes":%d}`, mode, id, bytes))}
}

// TestMemoryBudget: runs reserve what they need from the budget, from admission to their end
// (paused or not), and wait Pending, FIFO, saying so, while it is not free; a run that needs
// more than the whole budget is refused.
func TestMemoryBudget(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.MemoryBudget = 100 << 20 })
	require.NoError(t, e.r.StartTask("a", sizedSpec("loop", "a", 60<<20)))
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.StartTask("b", sizedSpec("loop", "b", 60<<20)))
	snap := e.waitState(t, "b", lifecycle.Pending)
	require.Equal(t, "waiting for memory: needs 60 MiB, 60 MiB of 100 MiB reserved", snap.Message)
	require.NoError(t, e.r.StartTask("c", sizedSpec("quick", "c", 1<<20)))
	e.waitState(t, "c", lifecycle.Pending) // FIFO: it does not overtake b

	require.NoError(t, e.r.PauseTask("a"))
	e.waitState(t, "a", lifecycle.Paused)
	time.Sleep(20 * time.Millisecond) // a paused run keeps its memory: nothing may start
	snap, _ = e.r.Snapshot("b")
	require.Equal(t, lifecycle.Pending, snap.Status)
	require.Equal(t, int64(60<<20), e.r.Stats().MemoryInUse)

	require.NoError(t, e.r.StopTask("a"))
	e.waitState(t, "b", lifecycle.Running)
	e.sink.waitTo(t, "c", lifecycle.Finished)
	e.h.release("b")
	e.sink.waitTo(t, "b", lifecycle.Finished)
	require.Eventually(t, func() bool { return e.r.Stats().MemoryInUse == 0 }, waitFor, tick)

	err := e.r.StartTask("huge", sizedSpec("quick", "huge", 101<<20))
	require.ErrorIs(t, err, runner.ErrInvalidParams)
	require.Contains(t, err.Error(), "more than the operator's whole budget of 100 MiB")
}

func TestActivityAndHeartbeat(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "loop")
	first := e.waitState(t, "a", lifecycle.Running).LastActivity
	require.False(t, first.IsZero())
	require.Eventually(t, func() bool {
		snap, _ := e.r.Snapshot("a")
		return snap.LastActivity.After(first)
	}, waitFor, tick, "every pause point is a sign of life")
	e.h.release("a")
}

// TestATimeoutThatIsIgnoredAbandonsTheRun: a run past its timeout that ignores cancellation is
// reported Failed (DeadlineExceeded) after the stop grace, its slot is freed for others, and its
// goroutine is counted as abandoned until it returns.
func TestATimeoutThatIsIgnoredAbandonsTheRun(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent, o.StopGrace = 1, 50*time.Millisecond })
	spec := probeSpec("stuck", "stuck")
	spec.Timeout = 50 * time.Millisecond
	require.NoError(t, e.r.StartTask("stuck", spec))
	e.start(t, "next", "quick")
	tr := e.sink.waitTo(t, "stuck", lifecycle.Failed)
	require.Equal(t, lifecycle.ReasonDeadlineExceeded, tr.Reason)
	require.Contains(t, tr.Message, "abandoned")
	require.Equal(t, 1, e.r.Stats().Abandoned)
	e.sink.waitTo(t, "next", lifecycle.Finished) // the slot was freed
	close(e.h.unstuck)
	require.Eventually(t, func() bool { return e.r.Stats().Abandoned == 0 }, waitFor, tick)
}

func TestStopBecause(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "loop")
	require.NoError(t, e.r.PauseTask("a"))
	e.waitState(t, "a", lifecycle.Paused)
	require.NoError(t, e.r.StopTaskBecause("a", lifecycle.ReasonPauseTimeout, "paused longer than 1h"))
	tr := e.sink.waitTo(t, "a", lifecycle.Stopped)
	require.Equal(t, lifecycle.ReasonPauseTimeout, tr.Reason)
	require.Equal(t, "paused longer than 1h", tr.Message)
}
