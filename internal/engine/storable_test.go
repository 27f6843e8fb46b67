package engine_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/runner"
)

// TestOutcomesAreStorable: what a run produces is bounded and cleaned where it is produced,
// measured as PostgreSQL stores it, so that no write of it can fail later in the journal.
func TestOutcomesAreStorable(t *testing.T) {
	e := newEnv(t, nil)

	e.start(t, "result", "spacey")
	tr := e.sink.waitTo(t, "result", lifecycle.Failed)
	require.Equal(t, lifecycle.ReasonResultTooLarge, tr.Reason, "%d bytes of compact JSON, more as jsonb", len(spaceyArray()))
	require.Contains(t, tr.Message, "as PostgreSQL stores it")

	e.start(t, "checkpoint", "spaceycheckpoint")
	e.sink.waitTo(t, "checkpoint", lifecycle.Finished)
	e.h.mu.Lock()
	err := e.h.cpErr["checkpoint"]
	e.h.mu.Unlock()
	var tooLarge *runner.CheckpointTooLargeError
	require.ErrorAs(t, err, &tooLarge)
	require.Greater(t, tooLarge.Size, runner.MaxCheckpointBytes)
	require.Empty(t, e.saver.get("checkpoint"), "a checkpoint that cannot be stored is never handed on")

	e.start(t, "dirty", "dirtyfail")
	tr = e.sink.waitTo(t, "dirty", lifecycle.Failed)
	require.Equal(t, "badbyte\uFFFD here", tr.Message, "NUL removed, invalid UTF-8 replaced")

	e.start(t, "progress", "dirtyprogress")
	tr = e.sink.waitTo(t, "progress", lifecycle.Finished)
	require.Equal(t, "a"+strings.Repeat("é", runner.MaxProgressLen-2)+"…", tr.Progress, "NUL removed, cut to the character limit")
}
