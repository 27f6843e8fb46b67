package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

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
func newRepo(t testing.TB) *GormRepository {
	t.Helper()
	return openRepo(t, srv.NewDatabase(t), Config{MaxOpenConns: 20})
}

func openRepo(t testing.TB, url string, cfg Config) *GormRepository {
	t.Helper()
	cfg.URL = url
	repo, err := Open(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, repo.Close()) })
	return repo
}

// createTask creates a task and returns a tracker for its lifecycle.
func createTask(t testing.TB, repo *GormRepository, uid, namespace, name, taskName string) *tracker {
	t.Helper()
	task := &Task{UID: uid, Namespace: namespace, Name: name, TaskName: taskName}
	created, err := repo.CreateTask(testCtx(t), task)
	require.NoError(t, err)
	require.True(t, created)
	return &tracker{uid: uid, seq: 1, status: StatusPending}
}

// tracker mirrors what the controller's recorder knows about one task, and
// builds the next Transition from it.
type tracker struct {
	uid     string
	seq     int64
	status  Status
	attempt int
}

// next builds the transition to `to` with the given attempt and advances
// the tracker as if it was recorded.
func (k *tracker) next(to Status, attempt int, at time.Time, mods ...func(*Transition)) Transition {
	tr := Transition{
		TaskUID: k.uid, Seq: k.seq + 1, From: k.status, PrevAttempt: k.attempt,
		To: to, Attempt: attempt, Reason: "Test" + string(to), Message: "to " + string(to), At: at,
	}
	for _, m := range mods {
		m(&tr)
	}
	k.seq, k.status, k.attempt = tr.Seq, to, attempt
	return tr
}

// apply records the next transition and requires success.
func (k *tracker) apply(t testing.TB, repo Repository, to Status, attempt int, at time.Time, mods ...func(*Transition)) Transition {
	t.Helper()
	tr := k.next(to, attempt, at, mods...)
	require.NoError(t, repo.RecordTransition(testCtx(t), tr))
	return tr
}
