package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// TestPurgeHistory: only soft-deleted tasks older than the cutoff go, rows and history
// together; the history of every other task stays contiguous from seq 1.
func TestPurgeHistory(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	at := time.Now()
	for _, uid := range []string{"old-1", "old-2", "old-3", "recent", "live"} {
		k := createTask(t, repo, uid, "ns", uid, "demo")
		k.apply(t, repo, lifecycle.Running, 1, at)
		k.apply(t, repo, lifecycle.Finished, 1, at)
	}
	for _, uid := range []string{"old-1", "recent"} { // tasks with items, and their history
		_, err := repo.BeginItems(ctx, uid, owner1, 1, ItemPlan{Count: 3})
		require.NoError(t, err)
		_, err = repo.ClaimItems(ctx, uid, owner1, 1, 3)
		require.NoError(t, err)
	}
	for _, uid := range []string{"old-1", "old-2", "old-3", "recent"} {
		require.NoError(t, repo.MarkDeleted(ctx, uid))
	}
	require.NoError(t, repo.db.WithContext(ctx).Exec(
		`UPDATE background_tasks SET deleted_at = now() - interval '40 days' WHERE uid LIKE 'old-%'`).Error)

	cutoff := time.Now().Add(-30 * 24 * time.Hour)
	p, err := repo.PurgeHistory(ctx, cutoff, 2)
	require.NoError(t, err)
	require.Equal(t, Purged{Tasks: 2, Transitions: 6}, p, "small batches")
	p, err = repo.PurgeHistory(ctx, cutoff, 2)
	require.NoError(t, err)
	require.Equal(t, Purged{Tasks: 1, Transitions: 3}, p)
	p, err = repo.PurgeHistory(ctx, cutoff, 2)
	require.NoError(t, err)
	require.Zero(t, p.Tasks)

	for _, uid := range []string{"recent", "live"} {
		hist, err := repo.History(ctx, uid)
		require.NoError(t, err)
		require.Len(t, hist, 3, "kept whole")
	}
	var items struct{ OldItems, OldHistory, Kept int64 }
	require.NoError(t, repo.db.WithContext(ctx).Raw(`SELECT
		(SELECT count(*) FROM background_task_items WHERE task_uid = 'old-1') AS old_items,
		(SELECT count(*) FROM background_task_item_transitions WHERE task_uid = 'old-1') AS old_history,
		(SELECT count(*) FROM background_task_item_transitions WHERE task_uid = 'recent') AS kept`).Scan(&items).Error)
	require.Equal(t, struct{ OldItems, OldHistory, Kept int64 }{0, 0, 3}, items, "a purged task's items go with it")
	var day struct{ Tasks, Transitions int64 }
	require.NoError(t, repo.db.WithContext(ctx).Raw(`SELECT tasks, transitions FROM background_task_purges WHERE day = current_date`).Scan(&day).Error)
	require.Equal(t, int64(3), day.Tasks)
	require.Equal(t, int64(9), day.Transitions)
}
