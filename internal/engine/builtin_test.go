package engine_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

// The built-in task types through the engine: results, checkpoints, pause and resume.

func TestNoop(t *testing.T) {
	e := newEnv(t, nil)
	require.NoError(t, e.r.StartTask("n", engine.StartSpec{TaskName: "noop"}))
	tr := e.sink.waitTo(t, "n", lifecycle.Finished)
	require.JSONEq(t, `{}`, string(tr.Result))
}

func TestCountdown(t *testing.T) {
	e := newEnv(t, nil)
	spec := engine.StartSpec{TaskName: "countdown", Params: json.RawMessage(`{"from":5,"interval":"1ms"}`), Attempt: 1}
	require.NoError(t, e.r.StartTask("c", spec))
	tr := e.sink.waitTo(t, "c", lifecycle.Finished)
	require.JSONEq(t, `{"counted":5}`, string(tr.Result))
	require.Equal(t, "5/5", tr.Progress)
	require.Len(t, e.saver.get("c"), 5)

	// Resume from an initial checkpoint: only the remaining steps run.
	spec.Params = json.RawMessage(`{"from":10,"interval":"1ms"}`)
	spec.Checkpoint = json.RawMessage(`{"done":8}`)
	require.NoError(t, e.r.StartTask("r", spec))
	tr = e.sink.waitTo(t, "r", lifecycle.Finished)
	require.JSONEq(t, `{"counted":10}`, string(tr.Result))
	saves := e.saver.get("r")
	require.Len(t, saves, 2)
	require.JSONEq(t, `{"done":9}`, string(saves[0]))

	// checkpointEvery thins out saves; the last step is always saved.
	spec.Params = json.RawMessage(`{"from":7,"interval":"1ms","checkpointEvery":3}`)
	spec.Checkpoint = nil
	require.NoError(t, e.r.StartTask("e", spec))
	e.sink.waitTo(t, "e", lifecycle.Finished)
	require.Len(t, e.saver.get("e"), 3) // 3, 6, 7
}

func TestCountdownPauseResume(t *testing.T) {
	e := newEnv(t, nil)
	spec := engine.StartSpec{TaskName: "countdown", Params: json.RawMessage(`{"from":30,"interval":"1ms"}`)}
	require.NoError(t, e.r.StartTask("c", spec))
	e.waitState(t, "c", lifecycle.Running)
	require.NoError(t, e.r.PauseTask("c"))
	p := e.sink.waitTo(t, "c", lifecycle.Paused)
	require.Regexp(t, `^\d+/30$`, p.Progress)
	require.NoError(t, e.r.ResumeTask("c"))
	tr := e.sink.waitTo(t, "c", lifecycle.Finished)
	require.JSONEq(t, `{"counted":30}`, string(tr.Result))
}

func TestSleep(t *testing.T) {
	e := newEnv(t, nil)
	spec := engine.StartSpec{TaskName: "sleep", Params: json.RawMessage(`{"duration":"30ms","tick":"10ms"}`)}
	require.NoError(t, e.r.StartTask("s", spec))
	tr := e.sink.waitTo(t, "s", lifecycle.Finished)
	require.JSONEq(t, `{"slept":"30ms"}`, string(tr.Result))
	require.Equal(t, "30ms/30ms", tr.Progress)
	require.Len(t, e.saver.get("s"), 3)

	spec.Checkpoint = json.RawMessage(`{"elapsed":"20ms"}`)
	require.NoError(t, e.r.StartTask("r", spec))
	e.sink.waitTo(t, "r", lifecycle.Finished)
	saves := e.saver.get("r")
	require.Len(t, saves, 1, "resumed sleep only sleeps the rest")
	require.JSONEq(t, `{"elapsed":"30ms"}`, string(saves[0]))
}

func checksumOf(t *testing.T, tr engine.Transition) string {
	t.Helper()
	var res builtin.ChecksumResult
	require.NoError(t, json.Unmarshal(tr.Result, &res))
	require.Len(t, res.SHA256, 64)
	return res.SHA256
}

// TestChecksumDeterministic checks that the final digest does not depend on
// how the run was interrupted: uninterrupted, paused and resumed, or stopped
// and restarted from its last checkpoint in a new attempt.
func TestChecksumDeterministic(t *testing.T) {
	const params = `{"blocks":120,"blockSize":4096,"seed":42,"checkpointEvery":10}`
	spec := engine.StartSpec{TaskName: "checksum", Params: json.RawMessage(params), Attempt: 1}
	e := newEnv(t, nil)

	require.NoError(t, e.r.StartTask("plain", spec))
	want := checksumOf(t, e.sink.waitTo(t, "plain", lifecycle.Finished))

	other := spec
	other.Params = json.RawMessage(`{"blocks":120,"blockSize":4096,"seed":43,"checkpointEvery":10}`)
	require.NoError(t, e.r.StartTask("otherseed", other))
	require.NotEqual(t, want, checksumOf(t, e.sink.waitTo(t, "otherseed", lifecycle.Finished)))

	// Pause the run right after its 5th checkpoint (from inside the saver,
	// so the interruption point is deterministic).
	e.saver.mu.Lock()
	e.saver.hook = func(key runner.Key, data json.RawMessage) {
		if (key == "paused" || key == "stopped") && strings.Contains(string(data), `"next":50,`) {
			require.NoError(t, e.r.PauseTask(key))
		}
	}
	e.saver.mu.Unlock()

	require.NoError(t, e.r.StartTask("paused", spec))
	p := e.sink.waitTo(t, "paused", lifecycle.Paused)
	require.Equal(t, "50/120", p.Progress)
	require.NoError(t, e.r.ResumeTask("paused"))
	require.Equal(t, want, checksumOf(t, e.sink.waitTo(t, "paused", lifecycle.Finished)))

	require.NoError(t, e.r.StartTask("stopped", spec))
	e.sink.waitTo(t, "stopped", lifecycle.Paused)
	require.NoError(t, e.r.StopTask("stopped"))
	e.sink.waitTo(t, "stopped", lifecycle.Stopped)
	saves := e.saver.get("stopped")
	last := saves[len(saves)-1]
	require.Contains(t, string(last), `"next":50,`)

	// A new attempt (as after a failover) resumes from the checkpoint.
	resumed := spec
	resumed.Attempt = 2
	resumed.Checkpoint = last
	require.NoError(t, e.r.StartTask("stopped", resumed))
	tr := e.sink.waitTo(t, "stopped", lifecycle.Finished)
	require.Equal(t, want, checksumOf(t, tr))
	require.Len(t, e.saver.get("stopped"), len(saves)+6, "resumed run only hashed blocks 50..119")

	// A checkpoint from other params is refused rather than producing a wrong digest.
	mismatch := other
	mismatch.Checkpoint = last
	require.NoError(t, e.r.StartTask("mismatch", mismatch))
	f := e.sink.waitTo(t, "mismatch", lifecycle.Failed)
	require.Contains(t, f.Message, "different seed")
}
