package taskdb_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/taskdb"
	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, &srv))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fixture writes history the way the operator does (through its store, which owns the
// writes) and opens taskdb, which must read it through the documented schema alone.
type fixture struct {
	t    *testing.T
	repo *store.Repository
	db   *taskdb.DB
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	url := srv.NewDatabase(t)
	repo, err := store.Open(testCtx(t), store.Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, repo.Close()) })
	db, err := taskdb.Open(testCtx(t), url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return &fixture{t: t, repo: repo, db: db}
}

// step is one transition to record: to status, attempt, reason, offset from the base time.
type step struct {
	to      lifecycle.Status
	attempt int
	reason  string
	after   time.Duration
}

// task creates a task and records steps for it, returning its uid.
func (f *fixture) task(uid, name string, base time.Time, steps ...step) string {
	f.t.Helper()
	ctx := testCtx(f.t)
	owner := store.Owner{Name: "op", Epoch: 1}
	row, created, err := f.repo.CreateTask(ctx, store.NewTask{UID: uid, Namespace: "default", Name: name, TaskName: "countdown",
		Desired: lifecycle.DesiredRunning, Owner: owner, At: base})
	require.NoError(f.t, err)
	require.True(f.t, created)
	rec := row.Record()
	for _, s := range steps {
		tr, err := lifecycle.Next(rec, lifecycle.Event{To: s.to, Attempt: s.attempt, Reason: s.reason, Message: "to " + string(s.to), At: base.Add(s.after)})
		require.NoError(f.t, err)
		require.NoError(f.t, f.repo.RecordTransition(ctx, store.TransitionWrite{UID: uid, Owner: owner, Prev: rec, Transition: tr}))
		rec = lifecycle.Apply(rec, tr)
	}
	return uid
}

func TestHistoryAndLastTransition(t *testing.T) {
	f := newFixture(t)
	base := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	uid := f.task("uid-1", "countdown", base,
		step{lifecycle.Running, 1, "Started", time.Second},
		step{lifecycle.Stopped, 1, "Stopped", 2 * time.Second},
		step{lifecycle.Running, 2, "Started", 3 * time.Second},
	)
	ctx := testCtx(t)

	h, err := f.db.History(ctx, uid)
	require.NoError(t, err)
	require.Len(t, h, 4)
	require.Equal(t, int64(1), h[0].Seq)
	require.Empty(t, h[0].From, "seq 1 has no from status")
	require.Equal(t, "PENDING", h[0].To)
	require.Equal(t, taskdb.Transition{Seq: 4, From: "STOPPED", To: "RUNNING", Attempt: 2, Reason: "Started",
		Message: "to RUNNING", At: base.Add(3 * time.Second)}, withUTC(h[3]))

	last, err := f.db.LastTransitions(ctx, []string{uid, "no-such-uid"})
	require.NoError(t, err)
	require.Len(t, last, 1)
	require.Equal(t, int64(4), last[uid].Seq)

	row, err := f.db.TaskByUID(ctx, uid)
	require.NoError(t, err)
	require.Equal(t, "RUNNING", row.Text("status"))
	require.Equal(t, "2", row.Text("attempt"))
	require.Equal(t, "countdown", row.Text("name"))
	require.NotContains(t, row, "checkpoint", "the checkpoint is private resume data")
	_, deleted := row.Time("deleted_at")
	require.False(t, deleted)
	started, ok := row.Time("start_time")
	require.True(t, ok)
	require.True(t, started.Equal(base.Add(3*time.Second)), "start_time %s", started)

	_, err = f.db.TaskByUID(ctx, "no-such-uid")
	require.ErrorIs(t, err, taskdb.ErrNotFound)
}

func TestLatestTaskByNameFindsDeletedRows(t *testing.T) {
	f := newFixture(t)
	base := time.Now().Add(-time.Hour).UTC()
	f.task("old", "report", base)
	require.NoError(t, f.repo.MarkDeleted(testCtx(t), "old"))
	f.task("new", "report", base.Add(time.Minute))
	require.NoError(t, f.repo.MarkDeleted(testCtx(t), "new"))

	row, err := f.db.LatestTaskByName(testCtx(t), "default", "report")
	require.NoError(t, err)
	require.Equal(t, "new", row.Text("uid"))
	_, deleted := row.Time("deleted_at")
	require.True(t, deleted)
	_, err = f.db.LatestTaskByName(testCtx(t), "default", "nothing")
	require.ErrorIs(t, err, taskdb.ErrNotFound)
}

func TestPhaseCounts(t *testing.T) {
	f := newFixture(t)
	// Rows are created at the database's now(); the window starts after that.
	base := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	// a: pending, running from +1m, finished at +3m.
	f.task("a", "a", base, step{lifecycle.Running, 1, "Started", time.Minute}, step{lifecycle.Finished, 1, "Finished", 3 * time.Minute})
	// b: pending all along.
	f.task("b", "b", base)
	// c: deleted before the window: not counted.
	f.task("c", "c", base)
	require.NoError(t, f.repo.MarkDeleted(testCtx(t), "c"))

	counts, err := f.db.PhaseCounts(testCtx(t), "", base, base.Add(4*time.Minute), time.Minute)
	require.NoError(t, err)
	got := map[time.Duration]map[string]int{}
	for _, c := range counts {
		off := c.At.Sub(base)
		if got[off] == nil {
			got[off] = map[string]int{}
		}
		got[off][c.Status] = c.Tasks
	}
	require.Equal(t, map[time.Duration]map[string]int{
		0:               {"PENDING": 2},
		time.Minute:     {"RUNNING": 1, "PENDING": 1},
		2 * time.Minute: {"RUNNING": 1, "PENDING": 1},
		3 * time.Minute: {"FINISHED": 1, "PENDING": 1},
		4 * time.Minute: {"FINISHED": 1, "PENDING": 1},
	}, got)

	other, err := f.db.PhaseCounts(testCtx(t), "elsewhere", base, base.Add(4*time.Minute), time.Minute)
	require.NoError(t, err)
	require.Empty(t, other, "tasks of another namespace are not counted")

	_, err = f.db.PhaseCounts(testCtx(t), "", base, base.Add(-time.Minute), time.Minute)
	require.Error(t, err)
}

func TestOpenHidesPassword(t *testing.T) {
	_, err := taskdb.Open(testCtx(t), "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=1")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
	require.Equal(t, "127.0.0.1:1/db", taskdb.Describe("postgres://u:s3cret@127.0.0.1:1/db"))
}

func withUTC(tr taskdb.Transition) taskdb.Transition {
	tr.At = tr.At.UTC()
	return tr
}

// TestReadersCannotWrite: whatever role the URL names, a reader's sessions are read-only.
func TestReadersCannotWrite(t *testing.T) {
	f := newFixture(t)
	f.task("u1", "t1", time.Now())
	err := f.db.ExecForTest(testCtx(t), `UPDATE background_tasks SET progress = 'x'`)
	require.ErrorContains(t, err, "read-only transaction")
}

// TestFiringsReadsASchedulesSlots: the firings the operator's store wrote, newest first, manual
// runs included.
func TestFiringsReadsASchedulesSlots(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	slot := time.Date(2026, 12, 5, 2, 30, 0, 0, time.UTC)
	_, _, err := f.repo.RecordFirings(ctx, []store.Firing{
		{ScheduleUID: "s1", Namespace: "default", Schedule: "nightly", Slot: slot, Outcome: store.FiringCreated, TaskName: "nightly-1", RecordedBy: "op"},
		{ScheduleUID: "s1", Namespace: "default", Schedule: "nightly", Slot: slot.Add(24 * time.Hour), Outcome: store.FiringMissed, Reason: "Late: ...", RecordedBy: "op"},
		{ScheduleUID: "s1", Namespace: "default", Schedule: "nightly", Slot: slot.Add(time.Hour), Manual: true, Outcome: store.FiringCreated,
			TaskName: "nightly-manual-1", RecordedBy: "op"},
		{ScheduleUID: "s2", Namespace: "other", Schedule: "nightly", Slot: slot, Outcome: store.FiringCreated, TaskName: "x", RecordedBy: "op"},
	})
	require.NoError(t, err)
	got, err := f.db.Firings(ctx, "default", "nightly", 10)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, []string{"missed", "created", "created"}, []string{got[0].Outcome, got[1].Outcome, got[2].Outcome})
	require.True(t, got[1].Manual)
	require.Equal(t, "nightly-1", got[2].TaskName)
	require.True(t, slot.Equal(got[2].Slot))
	got, err = f.db.Firings(ctx, "default", "nightly", 1)
	require.NoError(t, err)
	require.Len(t, got, 1, "limit")
}
