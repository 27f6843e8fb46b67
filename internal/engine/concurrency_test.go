package engine_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

func TestConcurrencyBound(t *testing.T) {
	const limit, n = 3, 12
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = limit })
	for i := range n {
		key := runner.Key(fmt.Sprint("t", i))
		spec := engine.StartSpec{TaskName: "probe", Params: json.RawMessage(`{"mode":"burst","steps":20}`)}
		require.NoError(t, e.r.StartTask(key, spec))
	}
	st := e.r.Stats()
	require.Equal(t, limit, st.SlotsInUse)
	require.Equal(t, n-limit, st.Pending)
	for i := range n {
		e.sink.waitTo(t, runner.Key(fmt.Sprint("t", i)), lifecycle.Finished)
	}
	require.LessOrEqual(t, e.h.maxRunning.Load(), int64(limit), "observed by the tasks themselves")
	require.Equal(t, int64(limit), e.h.maxRunning.Load(), "the bound should also be reached")

	last := e.sink.of(runner.Key(fmt.Sprint("t", n-1)))
	require.Equal(t, lifecycle.Pending, last[0].To)
	require.Equal(t, lifecycle.ReasonQueued, last[0].Reason)
	require.Equal(t, "waiting for a free slot (3/3 in use)", last[0].Message)
	require.Equal(t, lifecycle.ReasonStarted, last[1].Reason)
	require.Zero(t, e.r.Stats().SlotsInUse)
}

func TestPendingQueueIsFIFO(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = 1 })
	e.start(t, "blocker", "loop")
	e.waitState(t, "blocker", lifecycle.Running)
	<-e.h.started // blocker
	want := []string{"q1", "q2", "q3", "q4", "q5"}
	for _, id := range want {
		e.start(t, id, "quick")
		e.waitState(t, runner.Key(id), lifecycle.Pending)
	}
	e.h.release("blocker")
	var got []string
	for range want {
		got = append(got, <-e.h.started)
	}
	require.Equal(t, want, got)
}

func TestPausePendingTask(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = 1 })
	e.start(t, "a", "loop")
	e.waitState(t, "a", lifecycle.Running)
	e.start(t, "b", "loop")
	e.waitState(t, "b", lifecycle.Pending)

	require.NoError(t, e.r.PauseTask("b"))
	snap, _ := e.r.Snapshot("b")
	require.Equal(t, lifecycle.Paused, snap.Status, "a Pending task pauses immediately")
	require.Equal(t, 0, e.r.Stats().Pending)

	e.h.release("a")
	e.sink.waitTo(t, "a", lifecycle.Finished)
	require.Eventually(t, func() bool { return e.r.Stats().SlotsInUse == 0 }, waitFor, tick)
	snap, _ = e.r.Snapshot("b")
	require.Equal(t, lifecycle.Paused, snap.Status, "a paused task is not started when a slot frees")
	require.Zero(t, e.h.runsOf("b"))

	require.NoError(t, e.r.ResumeTask("b"))
	e.waitState(t, "b", lifecycle.Running)
	e.h.release("b")
	e.sink.waitTo(t, "b", lifecycle.Finished)
	require.Equal(t, []lifecycle.Status{lifecycle.Pending, lifecycle.Paused, lifecycle.Running, lifecycle.Finished}, e.sink.states("b"))
	require.Equal(t, lifecycle.ReasonResumed, e.sink.of("b")[2].Reason)
}

func TestResumeWaitsForSlot(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = 1 })
	e.start(t, "a", "loop")
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("a"))
	e.waitState(t, "a", lifecycle.Paused)
	e.start(t, "b", "loop")
	e.waitState(t, "b", lifecycle.Running)

	require.NoError(t, e.r.ResumeTask("a"))
	snap, _ := e.r.Snapshot("a")
	require.Equal(t, lifecycle.Pending, snap.Status)
	require.NoError(t, e.r.ResumeTask("a"), "resume of a pending task is a no-op")

	e.h.release("b")
	e.waitState(t, "a", lifecycle.Running)
	e.h.release("a")
	e.sink.waitTo(t, "a", lifecycle.Finished)
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Paused, lifecycle.Pending, lifecycle.Running, lifecycle.Finished}, e.sink.states("a"))
	require.Equal(t, lifecycle.ReasonResumed, e.sink.of("a")[3].Reason)
	require.Equal(t, 1, e.h.runsOf("a"))
}

func TestStopPendingTask(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = 1 })
	e.start(t, "a", "loop")
	e.waitState(t, "a", lifecycle.Running)
	e.start(t, "b", "loop")
	e.waitState(t, "b", lifecycle.Pending)
	require.NoError(t, e.r.StopTask("b"))
	e.sink.waitTo(t, "b", lifecycle.Stopped)
	require.Zero(t, e.h.runsOf("b"))
	require.Empty(t, e.h.outcomesOf("b"), "Post only follows Pre")
	require.Zero(t, e.r.Stats().Pending)
	require.NoError(t, e.r.StopTask("a"))
	e.sink.waitTo(t, "a", lifecycle.Stopped)
}

// TestConcurrentControlChaos hammers pause/resume/stop from several
// goroutines; checkChains (in cleanup) verifies per-key order and that the
// Sink never ran concurrently for one key, the race detector does the rest.
func TestConcurrentControlChaos(t *testing.T) {
	const n = 40
	e := newEnv(t, func(o *engine.Options) { o.MaxConcurrent = 8 })
	keys := make([]runner.Key, n)
	for i := range n {
		keys[i] = runner.Key(fmt.Sprint("k", i))
		e.start(t, string(keys[i]), "loop")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 300 {
				k := keys[rng.IntN(n)]
				switch rng.IntN(10) {
				case 0:
					_ = e.r.StopTask(k)
				case 1, 2, 3, 4:
					_ = e.r.PauseTask(k)
				default:
					_ = e.r.ResumeTask(k)
				}
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		require.NoError(t, e.r.StopTask(k))
	}
	for _, k := range keys {
		e.waitState(t, k, lifecycle.Stopped)
	}
	st := e.r.Stats()
	require.Zero(t, st.Running+st.Pending+st.Paused)
	require.Zero(t, st.SlotsInUse)
}
