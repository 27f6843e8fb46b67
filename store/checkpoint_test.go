package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

func TestCheckpoint(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	k.apply(t, repo, lifecycle.Running, 1, time.Now())

	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, json.RawMessage(`{"offset":10}`)))
	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, json.RawMessage(`{"offset":20}`)))
	row, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.JSONEq(t, `{"offset":20}`, string(row.CurrentCheckpoint()))

	// A zombie run of an older attempt cannot overwrite it: the checkpoint is obsolete.
	err = repo.SaveCheckpoint(ctx, "u1", owner1, 0, json.RawMessage(`{"offset":99}`))
	require.ErrorIs(t, err, ErrConflict)
	require.False(t, IsTransient(err))
	row, err = repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.JSONEq(t, `{"offset":20}`, string(row.CurrentCheckpoint()))

	require.ErrorIs(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, nil), ErrInvalidArgument)
	require.ErrorIs(t, repo.SaveCheckpoint(ctx, "nope", owner1, 1, json.RawMessage(`{}`)), ErrNotFound)
	require.NoError(t, repo.MarkDeleted(ctx, "u1"))
	require.ErrorIs(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, json.RawMessage(`{}`)), ErrDeleted)
}

func TestUpdateColumns(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	createTask(t, repo, "u1", "ns", "a", "demo")
	paused, progress := lifecycle.DesiredPaused, "3/10"
	require.NoError(t, repo.UpdateColumns(ctx, "u1", owner1, ColumnUpdate{Desired: &paused, Progress: &progress}))
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, lifecycle.DesiredPaused, got.DesiredState)
	require.Equal(t, "3/10", got.Progress)
	require.Equal(t, lifecycle.Pending, got.Status, "status untouched")
	require.Equal(t, int64(1), got.LastSeq)
	require.ErrorIs(t, repo.UpdateColumns(ctx, "nope", owner1, ColumnUpdate{Progress: &progress}), ErrNotFound)
	require.ErrorIs(t, repo.UpdateColumns(ctx, "u1", owner2, ColumnUpdate{Progress: &progress}), ErrFenced)
}
