package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCreateTaskIdempotent(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)

	task := &Task{UID: "uid-1", Namespace: "default", Name: "report", TaskName: "report"}
	created, err := repo.CreateTask(ctx, task)
	require.NoError(t, err)
	require.True(t, created)
	require.NotZero(t, task.ID)
	require.Equal(t, StatusPending, task.Status)
	require.Equal(t, DesiredRunning, task.DesiredState)
	require.Equal(t, int64(1), task.LastSeq)
	require.Zero(t, task.Attempt)
	require.False(t, task.CreatedAt.IsZero())

	again := &Task{UID: "uid-1", TaskName: "other"}
	created, err = repo.CreateTask(ctx, again)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, task.ID, again.ID)
	require.Equal(t, "report", again.TaskName, "filled from the database")

	hist, err := repo.History(ctx, "uid-1")
	require.NoError(t, err)
	require.Len(t, hist, 1, "no second creation record")
	require.Equal(t, int64(1), hist[0].Seq)
	require.Nil(t, hist[0].FromStatus)
	require.Equal(t, StatusPending, hist[0].ToStatus)
	require.Equal(t, "Created", hist[0].Reason)

	require.NoError(t, repo.MarkDeleted(ctx, "uid-1"))
	_, err = repo.CreateTask(ctx, &Task{UID: "uid-1", TaskName: "report"})
	require.ErrorIs(t, err, ErrAlreadyExists)

	_, err = repo.CreateTask(ctx, &Task{UID: "", TaskName: "report"})
	require.ErrorIs(t, err, ErrInvalidArgument)
	bad := DesiredState("SLEEPING")
	_, err = repo.CreateTask(ctx, &Task{UID: "x", TaskName: "report", DesiredState: bad})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestGetAndUpdateTask(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	_, err := repo.GetTask(ctx, "nope")
	require.ErrorIs(t, err, ErrNotFound)

	createTask(t, repo, "u1", "ns", "a", "demo")
	paused, name := DesiredPaused, "b"
	require.NoError(t, repo.UpdateTask(ctx, "u1", TaskUpdate{DesiredState: &paused, Name: &name}))
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, DesiredPaused, got.DesiredState)
	require.Equal(t, "b", got.Name)
	require.Equal(t, "ns", got.Namespace)
	require.Equal(t, StatusPending, got.Status, "status untouched")
	require.Equal(t, int64(1), got.LastSeq)

	require.ErrorIs(t, repo.UpdateTask(ctx, "nope", TaskUpdate{Name: &name}), ErrNotFound)
	bad := DesiredState("x")
	require.ErrorIs(t, repo.UpdateTask(ctx, "u1", TaskUpdate{DesiredState: &bad}), ErrInvalidArgument)
}

func TestListTasksPagination(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	at := time.Now()
	for i := range 25 {
		ns := []string{"a", "b"}[i%2]
		typ := []string{"report", "email", "backup"}[i%3]
		k := createTask(t, repo, fmt.Sprintf("u%02d", i), ns, fmt.Sprintf("t%02d", i), typ)
		if i%5 == 0 {
			k.apply(t, repo, StatusRunning, 1, at)
		}
	}

	collect := func(opts ListOptions) (names []string, pages int) {
		for {
			tasks, next, err := repo.ListTasks(ctx, opts)
			require.NoError(t, err)
			require.LessOrEqual(t, len(tasks), 10)
			pages++
			for _, tk := range tasks {
				names = append(names, tk.Name)
			}
			if next == "" {
				return names, pages
			}
			opts.Continue = next
		}
	}

	all, pages := collect(ListOptions{Limit: 10})
	require.Len(t, all, 25)
	require.Equal(t, 3, pages)
	require.Equal(t, "t00", all[0])
	require.Equal(t, "t24", all[24])

	evens, _ := collect(ListOptions{Limit: 10, Namespace: "a"})
	require.Len(t, evens, 13)

	reports, _ := collect(ListOptions{Limit: 10, Namespace: "a", TaskName: "report"}) // i%6 == 0
	require.Equal(t, []string{"t00", "t06", "t12", "t18", "t24"}, reports)

	running, _ := collect(ListOptions{Limit: 10, Statuses: []Status{StatusRunning}})
	require.Equal(t, []string{"t00", "t05", "t10", "t15", "t20"}, running)

	exact, next, err := repo.ListTasks(ctx, ListOptions{Limit: 5, Statuses: []Status{StatusRunning}})
	require.NoError(t, err)
	require.Len(t, exact, 5)
	require.Empty(t, next, "limit+1 fetch: an exactly full last page has no successor")

	_, _, err = repo.ListTasks(ctx, ListOptions{Continue: "garbage!"})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestListActiveAndMarkDeleted(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	at := time.Now()

	createTask(t, repo, "pending", "ns", "pending", "demo")
	running := createTask(t, repo, "running", "ns", "running", "demo")
	running.apply(t, repo, StatusRunning, 1, at)
	paused := createTask(t, repo, "paused", "ns", "paused", "demo")
	paused.apply(t, repo, StatusRunning, 1, at)
	paused.apply(t, repo, StatusPaused, 1, at)
	done := createTask(t, repo, "done", "ns", "done", "demo")
	done.apply(t, repo, StatusRunning, 1, at)
	done.apply(t, repo, StatusFinished, 1, at)

	uids := func() []string {
		tasks, err := repo.ListActive(ctx)
		require.NoError(t, err)
		var out []string
		for _, tk := range tasks {
			out = append(out, tk.UID)
		}
		return out
	}
	require.Equal(t, []string{"pending", "running", "paused"}, uids())

	require.NoError(t, repo.MarkDeleted(ctx, "running"))
	require.NoError(t, repo.MarkDeleted(ctx, "running"), "idempotent")
	require.NoError(t, repo.MarkDeleted(ctx, "never-existed"))
	require.Equal(t, []string{"pending", "paused"}, uids())

	_, err := repo.GetTask(ctx, "running")
	require.ErrorIs(t, err, ErrNotFound)
	hist, err := repo.History(ctx, "running")
	require.NoError(t, err, "history survives soft delete")
	require.Len(t, hist, 2)

	var deletedAt *time.Time
	require.NoError(t, repo.db.WithContext(ctx).Raw(
		`SELECT deleted_at FROM background_tasks WHERE uid = 'running'`).Scan(&deletedAt).Error)
	require.NotNil(t, deletedAt, "row kept for SQL users")

	err = repo.RecordTransition(ctx, running.next(StatusPaused, 1, at))
	require.ErrorIs(t, err, ErrStaleTransition, "no transitions on deleted tasks")
}
