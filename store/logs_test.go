package store

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// TestLogsNeverShowPayloads: statement logs (failed, slow, or every statement at V(2)) show
// SQL with placeholders, never the task data bound to them (results, checkpoints, messages).
func TestLogsNeverShowPayloads(t *testing.T) {
	var mu sync.Mutex
	var logged strings.Builder
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logged.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 2})
	repo := openRepo(t, srv.NewDatabase(t), Config{Logger: log})
	ctx := testCtx(t)

	k := createTask(t, repo, "u1", "ns", "n", "demo")
	k.apply(t, repo, lifecycle.Running, 1, time.Now(), func(ev *lifecycle.Event) { ev.Message = "SECRET-MESSAGE" })
	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, json.RawMessage(`{"token":"SECRET-CHECKPOINT"}`)))
	w := k.write(t, lifecycle.Finished, 1, time.Now())
	w.Result = json.RawMessage(`{"password":"SECRET-RESULT"}`)
	require.NoError(t, repo.RecordTransition(ctx, w))
	// A failing statement is logged too.
	require.Error(t, repo.db.WithContext(ctx).Exec(`UPDATE background_tasks SET progress = ? WHERE uid = 'u1'`, strings.Repeat("SECRET-PROGRESS", 10)).Error)

	mu.Lock()
	out := logged.String()
	mu.Unlock()
	require.Contains(t, out, "background_tasks", "statements are logged at V(2)")
	for _, secret := range []string{"SECRET-MESSAGE", "SECRET-CHECKPOINT", "SECRET-RESULT", "SECRET-PROGRESS"} {
		require.NotContains(t, out, secret)
	}
}
