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
	// Many tasks' transitions in one statement, and items' outcomes.
	a, b := createTask(t, repo, "a", "ns", "a", "demo"), createTask(t, repo, "b", "ns", "b", "demo")
	for _, err := range repo.RecordTransitions(ctx, []TransitionWrite{
		a.write(t, lifecycle.Running, 1, time.Now(), func(ev *lifecycle.Event) { ev.Message = "SECRET-BATCHED" }),
		b.write(t, lifecycle.Running, 1, time.Now()),
	}) {
		require.NoError(t, err)
	}
	_, err := repo.BeginItems(ctx, "a", owner1, 1, ItemPlan{Count: 1})
	require.NoError(t, err)
	claimed, err := repo.ClaimItemsFrom(ctx, "a", owner1, 1, 1, 0)
	require.NoError(t, err)
	_, err = repo.FinishItems(ctx, "a", owner1, 1, 0, []ItemOutcome{{Index: claimed[0].Index, Execution: claimed[0].Execution,
		Outcome: OutcomeFailed, Error: "SECRET-ITEM-ERROR"}})
	require.NoError(t, err)
	// A failing statement is logged too.
	require.Error(t, repo.db.WithContext(ctx).Exec(`UPDATE background_tasks SET progress = ? WHERE uid = 'u1'`, strings.Repeat("SECRET-PROGRESS", 10)).Error)

	mu.Lock()
	out := logged.String()
	mu.Unlock()
	require.Contains(t, out, "background_tasks", "statements are logged at V(2)")
	for _, secret := range []string{"SECRET-MESSAGE", "SECRET-CHECKPOINT", "SECRET-RESULT", "SECRET-PROGRESS", "SECRET-BATCHED", "SECRET-ITEM-ERROR"} {
		require.NotContains(t, out, secret)
	}
}
