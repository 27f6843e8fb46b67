package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

func TestCreateTaskIdempotent(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	nt := NewTask{UID: "uid-1", Namespace: "default", Name: "report", TaskName: "report", Desired: lifecycle.DesiredRunning,
		RestartGeneration: 3, Owner: owner1, At: time.Now()}
	task, created, err := repo.CreateTask(ctx, nt)
	require.NoError(t, err)
	require.True(t, created)
	require.NotZero(t, task.ID)
	rec := task.Record()
	require.WithinDuration(t, nt.At, rec.TransitionedAt, time.Millisecond)
	rec.TransitionedAt = time.Time{}
	require.Equal(t, lifecycle.Record{Status: lifecycle.Pending, Reason: lifecycle.ReasonCreated, Seq: 1, RestartGeneration: 3}, rec,
		"a new task honours the restartGeneration it was created with")
	owner, ok := task.Owned()
	require.True(t, ok)
	require.Equal(t, owner1, owner, "the creator owns the row")

	again := nt
	again.TaskName, again.Owner = "other", owner2
	existing, created, err := repo.CreateTask(ctx, again)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, task.ID, existing.ID)
	require.Equal(t, "report", existing.TaskName, "the stored row, unchanged")
	owner, _ = existing.Owned()
	require.Equal(t, owner1, owner, "a second creator does not take the row")

	hist, err := repo.History(ctx, "uid-1")
	require.NoError(t, err)
	require.Len(t, hist, 1, "no second creation record")
	require.Equal(t, lifecycle.Transition{Seq: 1, To: lifecycle.Pending, Reason: lifecycle.ReasonCreated, At: hist[0].At, RestartGeneration: 3}, hist[0].Lifecycle())

	require.NoError(t, repo.MarkDeleted(ctx, "uid-1"))
	_, _, err = repo.CreateTask(ctx, nt)
	require.ErrorIs(t, err, ErrAlreadyExists)
	for _, bad := range []NewTask{{TaskName: "x", Desired: lifecycle.DesiredRunning, Owner: owner1},
		{UID: "x", TaskName: "x", Desired: "SLEEPING", Owner: owner1}, {UID: "x", TaskName: "x", Desired: lifecycle.DesiredRunning}} {
		_, _, err = repo.CreateTask(ctx, bad)
		require.ErrorIs(t, err, ErrInvalidArgument)
	}
}

func TestListLiveAndMarkDeleted(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	at := time.Now()

	createTask(t, repo, "pending", "ns", "pending", "demo")
	running := createTask(t, repo, "running", "ns", "running", "demo")
	running.apply(t, repo, lifecycle.Running, 1, at)
	paused := createTask(t, repo, "paused", "ns", "paused", "demo")
	paused.apply(t, repo, lifecycle.Running, 1, at)
	paused.apply(t, repo, lifecycle.Paused, 1, at)
	done := createTask(t, repo, "done", "ns", "done", "demo")
	done.apply(t, repo, lifecycle.Running, 1, at)
	finished := done.write(t, lifecycle.Finished, 1, at)
	finished.Result = []byte(`{"ok":true}`)
	require.NoError(t, repo.RecordTransition(ctx, finished))
	_, err := repo.Claim(ctx, "done", owner2, owner1.Epoch)
	require.NoError(t, err)

	uids := func(tasks []Task, err error) []string {
		require.NoError(t, err)
		var out []string
		for _, tk := range tasks {
			out = append(out, tk.UID)
		}
		return out
	}
	live, err := repo.ListLive(ctx)
	require.Equal(t, []string{"pending", "running", "paused", "done"}, uids(live, err))
	require.Nil(t, live[3].Result, "payloads are not read")

	require.NoError(t, repo.MarkDeleted(ctx, "running"))
	require.NoError(t, repo.MarkDeleted(ctx, "running"), "idempotent")
	require.NoError(t, repo.MarkDeleted(ctx, "never-existed"))
	require.Equal(t, []string{"pending", "paused", "done"}, uids(repo.ListLive(ctx)))

	row, err := repo.GetTask(ctx, "running")
	require.NoError(t, err)
	require.True(t, row.DeletedAt.Valid, "row kept for SQL users, marked deleted")
	hist, err := repo.History(ctx, "running")
	require.NoError(t, err, "history survives soft delete")
	require.Len(t, hist, 2)

	require.ErrorIs(t, repo.RecordTransition(ctx, running.write(t, lifecycle.Paused, 1, at)), ErrDeleted, "no transitions on deleted tasks")
	_, err = repo.Claim(ctx, "running", owner2, owner1.Epoch)
	require.ErrorIs(t, err, ErrDeleted)
}

func TestNextEpochGrows(t *testing.T) {
	repo := newRepo(t)
	a, err := repo.NextEpoch(testCtx(t))
	require.NoError(t, err)
	b, err := repo.NextEpoch(testCtx(t))
	require.NoError(t, err)
	require.Greater(t, b, a)
	require.Positive(t, a)
}
