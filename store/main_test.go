package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// srv is the PostgreSQL server shared by this package's tests; each test
// gets its own database on it.
var srv *pgtest.Server

func TestMain(m *testing.M) {
	code := pgtest.Main(m, &srv)
	if code == 0 {
		// After the server is closed and every pool is released, nothing of
		// ours may still run.
		// GORM's PrepareStmt cache starts an LRU janitor goroutine that
		// never stops; only the benchmark comparing PrepareStmt uses it.
		if err := goleak.Find(goleak.IgnoreTopFunction("gorm.io/gorm/internal/lru.NewLRU[...].func1")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testCtx is the test's context with a deadline, as callers are expected to pass.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newRepo opens a repository on a fresh, migrated database.
func newRepo(t testing.TB) *Repository {
	t.Helper()
	return openRepo(t, srv.NewDatabase(t), Config{MaxOpenConns: 20})
}

func openRepo(t testing.TB, url string, cfg Config) *Repository {
	t.Helper()
	cfg.URL = url
	repo, err := Open(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, repo.Close()) })
	return repo
}

// owner1 and owner2 are two operator processes; owner2 started later (a larger epoch).
var (
	owner1 = Owner{Name: "op-1", Epoch: 1}
	owner2 = Owner{Name: "op-2", Epoch: 2}
)

// createTask creates a task owned by owner1 and returns a tracker for its lifecycle.
func createTask(t testing.TB, repo *Repository, uid, namespace, name, taskName string) *tracker {
	t.Helper()
	row, created, err := repo.CreateTask(testCtx(t), NewTask{UID: uid, Namespace: namespace, Name: name, TaskName: taskName,
		Desired: lifecycle.DesiredRunning, Owner: owner1, At: time.Now()})
	require.NoError(t, err)
	require.True(t, created)
	return &tracker{uid: uid, owner: owner1, rec: row.Record()}
}

// tracker mirrors what an owner's journal knows about one task.
type tracker struct {
	uid   string
	owner Owner
	rec   lifecycle.Record
}

// write builds the transition for ev from the tracked record, as the journal does.
func (k *tracker) write(t testing.TB, to lifecycle.Status, attempt int, at time.Time, mods ...func(*lifecycle.Event)) TransitionWrite {
	t.Helper()
	ev := lifecycle.Event{To: to, Attempt: attempt, Reason: "Test" + string(to), Message: "to " + string(to), At: at}
	for _, m := range mods {
		m(&ev)
	}
	tr, err := lifecycle.Next(k.rec, ev)
	require.NoError(t, err)
	return TransitionWrite{UID: k.uid, Owner: k.owner, Prev: k.rec, Transition: tr}
}

// apply records the transition to `to` and requires success.
func (k *tracker) apply(t testing.TB, repo *Repository, to lifecycle.Status, attempt int, at time.Time, mods ...func(*lifecycle.Event)) TransitionWrite {
	t.Helper()
	w := k.write(t, to, attempt, at, mods...)
	require.NoError(t, repo.RecordTransition(testCtx(t), w))
	k.advance(w)
	return w
}

// advance moves the tracker past a recorded write.
func (k *tracker) advance(w TransitionWrite) { k.rec = lifecycle.Apply(k.rec, w.Transition) }
