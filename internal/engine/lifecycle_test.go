package engine_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

func TestStartRunFinish(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "quick")
	fin := e.sink.waitTo(t, "a", lifecycle.Finished)
	require.Equal(t, lifecycle.ReasonCompleted, fin.Reason)
	require.JSONEq(t, `{"ok":true}`, string(fin.Result))
	require.False(t, fin.StartedAt.IsZero())
	require.Equal(t, 1, fin.Attempt)

	trs := e.sink.of("a")
	require.Len(t, trs, 2)
	require.Equal(t, lifecycle.Status(""), trs[0].From)
	require.Equal(t, lifecycle.Running, trs[0].To)
	require.Equal(t, lifecycle.ReasonStarted, trs[0].Reason)

	outs := e.h.outcomesOf("a")
	require.Len(t, outs, 1)
	require.Equal(t, v1alpha1.PhaseFinished, outs[0].Phase)
	require.NoError(t, outs[0].Err)
}

func TestRunErrorFails(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "fail")
	tr := e.sink.waitTo(t, "a", lifecycle.Failed)
	require.Equal(t, lifecycle.ReasonError, tr.Reason)
	require.Equal(t, "boom", tr.Message)
	outs := e.h.outcomesOf("a")
	require.Len(t, outs, 1)
	require.Equal(t, v1alpha1.PhaseFailed, outs[0].Phase)
	require.EqualError(t, outs[0].Err, "boom")
}

func TestPreErrorFailsWithoutRun(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "preFail")
	tr := e.sink.waitTo(t, "a", lifecycle.Failed)
	require.Equal(t, lifecycle.ReasonError, tr.Reason)
	require.Equal(t, "pre: pre boom", tr.Message)
	require.Zero(t, e.h.runsOf("a"), "Run must not be called after Pre failed")
	require.Len(t, e.h.outcomesOf("a"), 1, "Post is called after a Pre failure")
}

func TestPostErrorKeepsFinished(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "postFail")
	tr := e.sink.waitTo(t, "a", lifecycle.Finished)
	require.Equal(t, "post: post boom", tr.Message)
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Finished}, e.sink.states("a"))
}

func TestPanicRecoveredInEachHook(t *testing.T) {
	for _, mode := range []string{"prePanic", "runPanic", "postPanic"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, nil)
			e.start(t, "p", mode)
			tr := e.sink.waitTo(t, "p", lifecycle.Failed)
			require.Equal(t, lifecycle.ReasonPanic, tr.Reason)
			require.Contains(t, tr.Message, "kaboom")
			require.Contains(t, tr.Message, "goroutine")
			require.LessOrEqual(t, len(tr.Message), 4096)
			hook := strings.TrimSuffix(strings.ToLower(mode), "panic")
			require.Contains(t, tr.Message, "panic in "+hook)

			// The runner keeps serving.
			e.start(t, "after", "quick")
			e.sink.waitTo(t, "after", lifecycle.Finished)
		})
	}
}

func TestInvalidJSONResultFails(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, registerRaw[badName](reg, func(json.RawMessage) (runner.Task[json.RawMessage], error) { return badResult{}, nil }))
	e := newEnv(t, func(o *engine.Options) { o.Registry = reg })
	require.NoError(t, e.r.StartTask("k", engine.StartSpec{TaskName: "bad"}))
	tr := e.sink.waitTo(t, "k", lifecycle.Failed)
	require.Contains(t, tr.Message, "not valid JSON")
}

func TestPauseResumeContinuesSameRun(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "loop")
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("a"))
	p := e.sink.waitTo(t, "a", lifecycle.Paused)
	require.Equal(t, lifecycle.ReasonPaused, p.Reason)
	st := e.r.Stats()
	require.Equal(t, 1, st.Paused)
	require.Zero(t, st.Running)
	require.Zero(t, st.SlotsInUse, "a paused task holds no slot")

	require.NoError(t, e.r.PauseTask("a"), "pausing a paused task is a no-op")
	require.NoError(t, e.r.ResumeTask("a"))
	e.waitState(t, "a", lifecycle.Running)
	e.h.release("a")
	e.sink.waitTo(t, "a", lifecycle.Finished)

	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Paused, lifecycle.Running, lifecycle.Finished}, e.sink.states("a"))
	require.Equal(t, lifecycle.ReasonResumed, e.sink.of("a")[2].Reason)
	require.Equal(t, 1, e.h.runsOf("a"), "resume continues the same Run call")
}

func TestResumeCancelsPendingPauseRequest(t *testing.T) {
	// A task that never yields: the pause request stays pending, so we can
	// observe it and withdraw it.
	block := make(chan struct{})
	reg := runner.NewRegistry()
	require.NoError(t, registerRaw[noyieldName](reg, func(json.RawMessage) (runner.Task[json.RawMessage], error) { return &noYield{block: block}, nil }))
	e := newEnv(t, func(o *engine.Options) { o.Registry = reg })
	require.NoError(t, e.r.StartTask("a", engine.StartSpec{TaskName: "noyield"}))
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("a"))
	snap, _ := e.r.Snapshot("a")
	require.True(t, snap.PauseRequested)
	require.NoError(t, e.r.ResumeTask("a"))
	snap, _ = e.r.Snapshot("a")
	require.False(t, snap.PauseRequested)
	close(block)
	e.sink.waitTo(t, "a", lifecycle.Finished)
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Finished}, e.sink.states("a"))
}

func TestStopRunningEndsStoppedEvenIfRunReturnsError(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "loop")
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.StopTask("a"))
	tr := e.sink.waitTo(t, "a", lifecycle.Stopped)
	require.Equal(t, lifecycle.ReasonStopped, tr.Reason)
	outs := e.h.outcomesOf("a")
	require.Len(t, outs, 1)
	require.Equal(t, v1alpha1.PhaseStopped, outs[0].Phase)
	require.ErrorIs(t, outs[0].Err, runner.ErrStopped)
	require.NoError(t, e.r.StopTask("a"), "stopping a terminal task is a no-op")
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Stopped}, e.sink.states("a"))
}

func TestStopPausedUnblocksYield(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "loop")
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("a"))
	e.waitState(t, "a", lifecycle.Paused)
	require.NoError(t, e.r.StopTask("a"))
	require.NoError(t, e.r.StopTask("a"), "double stop is a no-op")
	e.sink.waitTo(t, "a", lifecycle.Stopped)
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Paused, lifecycle.Stopped}, e.sink.states("a"))
	require.Len(t, e.h.outcomesOf("a"), 1)
}

func TestStopGraceExceeded(t *testing.T) {
	returned := make(chan runner.Key, 1)
	e := newEnv(t, func(o *engine.Options) {
		o.StopGrace = 50 * time.Millisecond
		o.Returned = func(k runner.Key) { returned <- k }
	})
	e.start(t, "a", "stuck")
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.StopTask("a"))
	tr := e.sink.waitTo(t, "a", lifecycle.Stopped)
	require.Equal(t, lifecycle.ReasonStopGraceExceeded, tr.Reason)
	require.Contains(t, tr.Message, "stop grace")
	st := e.r.Stats()
	require.Equal(t, 1, st.Abandoned)
	require.Zero(t, st.SlotsInUse, "the slot of an abandoned task is freed")

	snap, _ := e.r.Snapshot("a")
	require.True(t, snap.Abandoned)

	// A new run of the key waits until the old goroutine returned: never two at a time.
	require.ErrorIs(t, e.r.StartTask("a", probeSpec("quick", "a")), engine.ErrStillRunning)
	close(e.h.unstuck)
	require.Equal(t, runner.Key("a"), <-returned, "the owner is told the key may run again")
	require.Zero(t, e.r.Stats().Abandoned)
	e.start(t, "a", "quick")
	e.sink.waitTo(t, "a", lifecycle.Finished)
	// Exactly one terminal report for the stuck run; its late Post ran.
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Stopped, lifecycle.Running, lifecycle.Finished}, e.sink.states("a"))
}

func TestTimeoutFails(t *testing.T) {
	e := newEnv(t, nil)
	spec := probeSpec("loop", "a")
	spec.Timeout = 50 * time.Millisecond
	require.NoError(t, e.r.StartTask("a", spec))
	tr := e.sink.waitTo(t, "a", lifecycle.Failed)
	require.Equal(t, lifecycle.ReasonDeadlineExceeded, tr.Reason)
	outs := e.h.outcomesOf("a")
	require.Len(t, outs, 1)
	require.ErrorIs(t, outs[0].Err, runner.ErrDeadlineExceeded)
}

func TestPauseStopsTimeoutClock(t *testing.T) {
	e := newEnv(t, nil)

	// RunTime is frozen while paused.
	spec := probeSpec("loop", "a")
	spec.Timeout = time.Hour
	require.NoError(t, e.r.StartTask("a", spec))
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("a"))
	s1 := e.waitState(t, "a", lifecycle.Paused)
	time.Sleep(20 * time.Millisecond) // let wall time pass; not an assertion on duration
	s2, _ := e.r.Snapshot("a")
	require.Equal(t, s1.RunTime, s2.RunTime, "paused time must not count")
	require.NoError(t, e.r.StopTask("a"))

	// A task paused for longer than its timeout is not failed; once resumed
	// its clock runs and it times out.
	spec = probeSpec("loop", "b")
	spec.Timeout = 100 * time.Millisecond
	require.NoError(t, e.r.StartTask("b", spec))
	require.NoError(t, e.r.PauseTask("b"))
	e.waitState(t, "b", lifecycle.Paused)
	time.Sleep(3 * spec.Timeout) // paused well past the timeout
	snap, _ := e.r.Snapshot("b")
	require.Equal(t, lifecycle.Paused, snap.Status)
	require.NoError(t, e.r.ResumeTask("b"))
	tr := e.sink.waitTo(t, "b", lifecycle.Failed)
	require.Equal(t, lifecycle.ReasonDeadlineExceeded, tr.Reason)
}

func TestIllegalCalls(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "done", "quick")
	e.waitState(t, "done", lifecycle.Finished)
	e.start(t, "live", "loop")
	e.waitState(t, "live", lifecycle.Running)

	require.ErrorIs(t, e.r.PauseTask("done"), engine.ErrTerminal)
	require.ErrorIs(t, e.r.ResumeTask("done"), engine.ErrTerminal)
	require.NoError(t, e.r.StopTask("done"))
	require.NoError(t, e.r.ResumeTask("live"), "resume running is a no-op")
	require.ErrorIs(t, e.r.StartTask("live", probeSpec("loop", "live")), engine.ErrAlreadyActive)
	require.ErrorIs(t, e.r.Forget("live"), engine.ErrActive)

	for name, call := range map[string]func(runner.Key) error{
		"pause": e.r.PauseTask, "resume": e.r.ResumeTask, "stop": e.r.StopTask, "forget": e.r.Forget,
	} {
		require.ErrorIs(t, call("nope"), engine.ErrNotFound, name)
	}
	_, ok := e.r.Snapshot("nope")
	require.False(t, ok)

	require.NoError(t, e.r.StopTask("live"))
	e.waitState(t, "live", lifecycle.Stopped)
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Stopped}, e.sink.states("live"))
}

func TestStartTaskValidationReportsNothing(t *testing.T) {
	e := newEnv(t, nil)
	err := e.r.StartTask("a", engine.StartSpec{TaskName: "nope"})
	require.ErrorIs(t, err, runner.ErrUnknownTaskType)
	err = e.r.StartTask("a", engine.StartSpec{TaskName: "countdown", Params: json.RawMessage(`{"from":-1}`)})
	require.ErrorIs(t, err, runner.ErrInvalidParams)
	require.Zero(t, e.sink.count())
	_, ok := e.r.Snapshot("a")
	require.False(t, ok)
}

func TestForget(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "a", "quick")
	e.waitState(t, "a", lifecycle.Finished)
	require.NoError(t, e.r.Forget("a"))
	_, ok := e.r.Snapshot("a")
	require.False(t, ok)
	require.ErrorIs(t, e.r.Forget("a"), engine.ErrNotFound)
}

func TestCheckpoints(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t, "fresh", "checkpoint")
	require.Eventually(t, func() bool { return len(e.saver.get("fresh")) == 1 }, waitFor, tick)
	e.h.mu.Lock()
	require.False(t, e.h.found["fresh"])
	e.h.mu.Unlock()

	e.start(t, "big", "bigcheckpoint")
	e.sink.waitTo(t, "big", lifecycle.Finished)
	e.h.mu.Lock()
	err := e.h.cpErr["big"]
	e.h.mu.Unlock()
	require.ErrorIs(t, err, runner.ErrCheckpointTooLarge)
	var tooLarge *runner.CheckpointTooLargeError
	require.ErrorAs(t, err, &tooLarge)
	require.Equal(t, runner.MaxCheckpointBytes, tooLarge.Limit)
	require.Empty(t, e.saver.get("big"))
	require.NoError(t, e.r.StopTask("fresh"))
}

func TestCheckpointsInMemoryWithoutSaver(t *testing.T) {
	e := newEnv(t, func(o *engine.Options) { o.Checkpoints = nil })
	e.start(t, "a", "checkpoint")
	e.waitState(t, "a", lifecycle.Running)
	require.NoError(t, e.r.StopTask("a"))
	e.waitState(t, "a", lifecycle.Stopped)
}

func TestRunnerPhases(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, builtin.Register(reg))
	_, err := engine.New(engine.Options{})
	require.Error(t, err, "Registry is required")
	_, err = engine.New(engine.Options{Registry: reg, MaxConcurrent: -1})
	require.Error(t, err)

	r, err := engine.New(engine.Options{Registry: reg})
	require.NoError(t, err)
	require.ErrorIs(t, r.StartTask("a", engine.StartSpec{TaskName: "noop"}), engine.ErrNotStarted)
	require.ErrorIs(t, r.PauseTask("a"), engine.ErrNotStarted)
	require.Equal(t, engine.DefaultMaxConcurrent, r.Stats().MaxConcurrent)

	e := newEnv(t, nil)
	e.stop()
	require.ErrorIs(t, e.r.StartTask("a", engine.StartSpec{TaskName: "noop"}), runner.ErrShutdown)
	require.Error(t, e.r.Start(t.Context()), "a runner cannot be started twice")
}
