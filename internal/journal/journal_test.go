package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var me = store.Owner{Name: "me", Epoch: 7}

// fakeStore records every write and fails them as its hook says.
type fakeStore struct {
	mu     sync.Mutex
	writes []string // "uid kind detail", in order
	fail   func(uid, kind string, w *store.TransitionWrite) error
	// batches are the sizes of the RecordTransitions calls; each waits for gate when set.
	batches []int
	gate    chan struct{}
}

func (f *fakeStore) record(uid, kind, detail string, w *store.TransitionWrite) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(uid, kind, w); err != nil {
			return err
		}
	}
	f.writes = append(f.writes, fmt.Sprintf("%s %s %s", uid, kind, detail))
	return nil
}

func (f *fakeStore) RecordTransition(_ context.Context, w store.TransitionWrite) error {
	tr := w.Transition
	return f.record(w.UID, "transition", fmt.Sprintf("%s>%s@%d %s", tr.From, tr.To, tr.Attempt, tr.Reason), &w)
}

func (f *fakeStore) RecordTransitions(ctx context.Context, ws []store.TransitionWrite) []error {
	f.mu.Lock()
	f.batches = append(f.batches, len(ws))
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	errs := make([]error, len(ws))
	seen := map[string]bool{}
	for i, w := range ws {
		if seen[w.UID] { // as the real store refuses it
			errs[i] = fmt.Errorf("%s twice in one batch: %w", w.UID, store.ErrInvalidArgument)
			continue
		}
		seen[w.UID] = true
		errs[i] = f.RecordTransition(ctx, w)
	}
	return errs
}

func (f *fakeStore) SaveCheckpoint(_ context.Context, uid string, _ store.Owner, attempt int, data json.RawMessage) error {
	return f.record(uid, "checkpoint", fmt.Sprintf("%d %s", attempt, data), nil)
}

func (f *fakeStore) UpdateColumns(_ context.Context, uid string, _ store.Owner, u store.ColumnUpdate) error {
	return f.record(uid, "columns", fmt.Sprintf("%v", u.Progress != nil), nil)
}

func (f *fakeStore) MarkDeleted(_ context.Context, uid string) error {
	return f.record(uid, "delete", "", nil)
}

func (f *fakeStore) Release(_ context.Context, uid string, o store.Owner) error {
	return f.record(uid, "release", o.Name, nil)
}

func (f *fakeStore) of(uid string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, w := range f.writes {
		if len(w) > len(uid) && w[:len(uid)+1] == uid+" " {
			out = append(out, w[len(uid)+1:])
		}
	}
	return out
}

func (f *fakeStore) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

// env is a started journal over a fake store.
type env struct {
	j        *Journal
	store    *fakeStore
	mu       sync.Mutex
	decided  map[string]int
	reported map[string]int
}

func newEnv(t *testing.T, writers int, fail func(uid, kind string, w *store.TransitionWrite) error, opts ...func(*Options)) *env {
	t.Helper()
	e := &env{store: &fakeStore{fail: fail}, decided: map[string]int{}, reported: map[string]int{}}
	o := Options{Store: e.store, Owner: func() store.Owner { return me }, Writers: writers, MaxBacklog: 4,
		WriteTimeout: time.Second, FlushTimeout: time.Second,
		Decide: func(nn types.NamespacedName) { e.mu.Lock(); e.decided[nn.Name]++; e.mu.Unlock() },
		Report: func(nn types.NamespacedName) { e.mu.Lock(); e.reported[nn.Name]++; e.mu.Unlock() },
	}
	for _, opt := range opts {
		opt(&o)
	}
	j, err := New(o)
	require.NoError(t, err)
	e.j = j
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = j.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// track adopts a new task (PENDING, attempt 0).
func (e *env) track(uid string) {
	rec, _ := lifecycle.Create(time.Now(), 0)
	row := &store.Task{UID: uid, Name: uid, Status: rec.Status, Reason: rec.Reason, LastSeq: rec.Seq}
	e.j.Track(types.NamespacedName{Namespace: "ns", Name: uid}, row)
}

// run reports a runner transition.
func (e *env) run(uid string, from, to lifecycle.Status, attempt int, mods ...func(*engine.Transition)) {
	t := engine.Transition{Key: runner.Key(uid), From: from, To: to, Attempt: attempt, At: time.Now(), Reason: "R" + to.Phase()}
	for _, m := range mods {
		m(&t)
	}
	e.j.Transition(t)
}

func (e *env) waitCommitted(t *testing.T, uid string, status lifecycle.Status, attempt int) Committed {
	t.Helper()
	var c Committed
	require.Eventually(t, func() bool {
		c, _ = e.j.Committed(uid)
		return c.Record.Status == status && c.Record.Attempt == attempt && c.Backlog == 0
	}, 5*time.Second, time.Millisecond, "%s never committed %s@%d (writes %v)", uid, status, attempt, e.store.of(uid))
	return c
}

func TestTransientFailuresAreRetriedInOrder(t *testing.T) {
	var failures int
	e := newEnv(t, 2, func(_, kind string, _ *store.TransitionWrite) error {
		if kind == "transition" && failures < 3 {
			failures++
			return &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}
		}
		return nil
	})
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.run("a", lifecycle.Running, lifecycle.Paused, 1)
	e.run("a", lifecycle.Paused, lifecycle.Running, 1)

	v, _ := e.j.View("a")
	require.Equal(t, lifecycle.Running, v.Record.Status, "decisions see the projected record at once")
	require.Equal(t, int64(4), v.Record.Seq)
	c := e.waitCommitted(t, "a", lifecycle.Running, 1)
	require.Equal(t, int64(4), c.Record.Seq)
	require.Empty(t, c.Problem.Reason, "the problem clears once writes succeed")
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning", "transition RUNNING>PAUSED@1 RPaused", "transition PAUSED>RUNNING@1 RRunning"}, e.store.of("a"))
}

func TestCommittedShowsOnlyWhatIsWritten(t *testing.T) {
	block := make(chan struct{})
	e := newEnv(t, 1, func(_, kind string, w *store.TransitionWrite) error {
		if kind == "transition" && w.Transition.To == lifecycle.Finished {
			<-block
		}
		return nil
	})
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.waitCommitted(t, "a", lifecycle.Running, 1)
	e.run("a", lifecycle.Running, lifecycle.Finished, 1, func(tr *engine.Transition) { tr.Result = json.RawMessage(`{"ok":true}`) })
	v, _ := e.j.View("a")
	require.Equal(t, lifecycle.Finished, v.Record.Status)
	c, _ := e.j.Committed("a")
	require.Equal(t, lifecycle.Running, c.Record.Status, "Finished is not committed yet")
	require.Nil(t, c.Result)
	close(block)
	c = e.waitCommitted(t, "a", lifecycle.Finished, 1)
	require.JSONEq(t, `{"ok":true}`, string(c.Result))
}

// checkViolation is what PostgreSQL answers to a row that breaks a CHECK constraint.
func checkViolation() error {
	return fmt.Errorf("record transition: %w", &pgconn.PgError{Code: "23514", ConstraintName: "background_tasks_result_size"})
}

func TestARejectedResultBecomesARecordRejectedFailure(t *testing.T) {
	e := newEnv(t, 1, func(_, kind string, w *store.TransitionWrite) error {
		if kind == "transition" && len(w.Result) > 0 {
			return checkViolation()
		}
		return nil
	})
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.run("a", lifecycle.Running, lifecycle.Finished, 1, func(tr *engine.Transition) { tr.Result = json.RawMessage(`[1]`) })
	c := e.waitCommitted(t, "a", lifecycle.Failed, 1)
	require.Equal(t, lifecycle.ReasonRecordRejected, c.Record.Reason)
	require.Contains(t, c.Record.Message, "could not be recorded")
	require.Equal(t, ReasonRecordRejected, c.Problem.Reason, "the Recorded condition says why")
	announced := e.j.TakeAnnouncements("a")
	require.True(t, announced[len(announced)-1].Warning)

	// Later writes proceed: a new attempt is recorded.
	require.NoError(t, e.j.Record("a", lifecycle.Event{To: lifecycle.Pending, Attempt: 2, Reason: lifecycle.ReasonRestarted}))
	c = e.waitCommitted(t, "a", lifecycle.Pending, 2)
	require.Empty(t, c.Problem.Reason)
}

func TestAWriteRejectedTwiceIsDroppedAndLaterWritesProceed(t *testing.T) {
	e := newEnv(t, 1, func(_, kind string, w *store.TransitionWrite) error {
		if kind == "transition" && w.Transition.To == lifecycle.Paused {
			return checkViolation()
		}
		if kind == "checkpoint" {
			return checkViolation()
		}
		return nil
	})
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	require.NoError(t, e.j.SaveCheckpoint(context.Background(), "a", 1, json.RawMessage(`{"n":1}`)))
	e.run("a", lifecycle.Running, lifecycle.Paused, 1)
	e.run("a", lifecycle.Paused, lifecycle.Running, 1) // no longer applies once PAUSED is dropped
	e.run("a", lifecycle.Running, lifecycle.Stopped, 1)
	c := e.waitCommitted(t, "a", lifecycle.Stopped, 1)
	require.Equal(t, int64(4), c.Record.Seq)
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning", "transition RUNNING>RUNNING@1 RRunning", "transition RUNNING>STOPPED@1 RStopped"},
		e.store.of("a"), "the pause was dropped; the resume that followed it is recorded from where the row is")
}

func TestAFencedTaskDropsEverythingAndIsReported(t *testing.T) {
	e := newEnv(t, 1, func(_, kind string, _ *store.TransitionWrite) error {
		if kind == "checkpoint" {
			return fmt.Errorf("save checkpoint: %w", &store.OwnedError{UID: "a", Owner: store.Owner{Name: "other", Epoch: 9}})
		}
		return nil
	})
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.waitCommitted(t, "a", lifecycle.Running, 1)
	require.NoError(t, e.j.SaveCheckpoint(context.Background(), "a", 1, json.RawMessage(`{"n":1}`)))
	require.Eventually(t, func() bool {
		v, _ := e.j.View("a")
		return v.Ownership == Fenced && v.FencedBy == store.Owner{Name: "other", Epoch: 9}
	}, 5*time.Second, time.Millisecond)
	e.run("a", lifecycle.Running, lifecycle.Stopped, 1)
	require.NoError(t, e.j.Record("a", lifecycle.Event{To: lifecycle.Stopped, Attempt: 1, Reason: "x"}))
	v, _ := e.j.View("a")
	require.Zero(t, v.Backlog, "nothing more is queued for a fenced task")
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning"}, e.store.of("a"))
	e.mu.Lock()
	require.Positive(t, e.decided["a"], "the controller is told, to stop the local run")
	e.mu.Unlock()
}

// TestWritersServeTasksRoundRobin: with one writer, a task that saves checkpoints as fast as it
// can gets one write per turn, so another task's transition is written within a few writes.
func TestWritersServeTasksRoundRobin(t *testing.T) {
	e := newEnv(t, 1, func(string, string, *store.TransitionWrite) error {
		time.Sleep(100 * time.Microsecond) // a write takes a while, as a real one does
		return nil
	})
	e.track("chatty")
	e.track("quiet")
	e.run("chatty", "", lifecycle.Running, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = e.j.SaveCheckpoint(context.Background(), "chatty", 1, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
		}
	})
	require.Eventually(t, func() bool { return len(e.store.of("chatty")) > 5 }, 5*time.Second, time.Millisecond,
		"the chatty task's checkpoints are being written")
	before := len(e.store.all())
	e.run("quiet", "", lifecycle.Running, 1)
	e.waitCommitted(t, "quiet", lifecycle.Running, 1)
	close(stop)
	wg.Wait()
	var at int
	for i, w := range e.store.all() {
		if w == "quiet transition PENDING>RUNNING@1 RRunning" {
			at = i
		}
	}
	require.LessOrEqual(t, at-before, 3, "the quiet task waited behind at most a turn of the chatty one: %v", e.store.all()[before:at+1])
}

func TestCheckpointsFollowTheirTransitionsAndCoalesce(t *testing.T) {
	block := make(chan struct{})
	e := newEnv(t, 1, func(_, kind string, w *store.TransitionWrite) error {
		if kind == "transition" && w.Transition.To == lifecycle.Running && w.Transition.Attempt == 2 {
			<-block
		}
		return nil
	})
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.run("a", lifecycle.Running, lifecycle.Stopped, 1)
	e.run("a", "", lifecycle.Running, 2) // a new attempt, blocked in the store
	for i := range 5 {
		require.NoError(t, e.j.SaveCheckpoint(context.Background(), "a", 2, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))))
	}
	require.NoError(t, e.j.SaveCheckpoint(context.Background(), "a", 1, json.RawMessage(`{"old":true}`)), "a late save of the old attempt is dropped")
	close(block)
	e.waitCommitted(t, "a", lifecycle.Running, 2)
	require.Eventually(t, func() bool { return len(e.store.of("a")) == 4 }, 5*time.Second, time.Millisecond)
	require.Equal(t, []string{
		"transition PENDING>RUNNING@1 RRunning", "transition RUNNING>STOPPED@1 RStopped", "transition STOPPED>RUNNING@2 RRunning",
		`checkpoint 2 {"i":4}`,
	}, e.store.of("a"), "only the latest checkpoint, after the transition that started its attempt")
}

func TestControllerEventsAreBoundedAndChecked(t *testing.T) {
	e := newEnv(t, 1, func(string, string, *store.TransitionWrite) error {
		return fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)
	})
	e.track("a")
	require.ErrorIs(t, e.j.Record("a", lifecycle.Event{To: lifecycle.Finished, Attempt: 0, Reason: "x"}), lifecycle.ErrIllegal)
	require.ErrorIs(t, e.j.Record("nope", lifecycle.Event{To: lifecycle.Stopped, Reason: "x"}), ErrUntracked)
	for attempt := 1; attempt <= 4; attempt++ {
		require.NoError(t, e.j.Record("a", lifecycle.Event{To: lifecycle.Pending, Attempt: attempt, Reason: lifecycle.ReasonRestarted}))
	}
	require.ErrorIs(t, e.j.Record("a", lifecycle.Event{To: lifecycle.Pending, Attempt: 5, Reason: lifecycle.ReasonRestarted}), ErrBacklogFull,
		"while PostgreSQL is down the controller's own changes are bounded")
}

func TestDeleteWritesLastAndEndsTheTask(t *testing.T) {
	e := newEnv(t, 1, nil)
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.run("a", lifecycle.Running, lifecycle.Stopped, 1)
	e.j.Delete("a")
	require.Eventually(t, func() bool { v, _ := e.j.View("a"); return v.Ownership == Deleted }, 5*time.Second, time.Millisecond)
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning", "transition RUNNING>STOPPED@1 RStopped", "delete "}, e.store.of("a"))
	e.j.Forget("a")
	_, tracked := e.j.View("a")
	require.False(t, tracked)
}

// TestReleaseWritesLastAndEndsTheTask: a handed-over task's row is released only after every
// write queued before (its transitions and its last checkpoint), and nothing is written after.
func TestReleaseWritesLastAndEndsTheTask(t *testing.T) {
	e := newEnv(t, 1, nil)
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	require.NoError(t, e.j.SaveCheckpoint(context.Background(), "a", 1, json.RawMessage(`{"n":3}`)))
	e.run("a", lifecycle.Running, lifecycle.Paused, 1)
	e.j.Release("a")
	require.Eventually(t, func() bool { v, _ := e.j.View("a"); return v.Ownership == Released }, 5*time.Second, time.Millisecond)
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning", `checkpoint 1 {"n":3}`, "transition RUNNING>PAUSED@1 RPaused", "release me"},
		e.store.of("a"))
	c, _ := e.j.Committed("a")
	require.False(t, c.Ownership.Writes(), "the status is no longer this process's to write")
	e.j.SetProgress("a", "late")
	e.run("a", lifecycle.Paused, lifecycle.Running, 1)
	v, _ := e.j.View("a")
	require.Zero(t, v.Backlog, "a released task takes nothing more to write")
	require.Len(t, e.store.of("a"), 4, "nothing is written after the release")
}

// TestARefusedDeleteWakesTheController: a delete PostgreSQL refuses for good wakes the
// controller (the object is gone: no watch event would), which then stops tracking the task
// and leaves the row to the sweep: a request cleared silently would leave the task tracked, run
// nowhere, until the next sweep.
func TestARefusedDeleteWakesTheController(t *testing.T) {
	var deletes atomic.Int32
	e := newEnv(t, 1, func(_, kind string, _ *store.TransitionWrite) error {
		if kind == "delete" {
			deletes.Add(1)
			return checkViolation()
		}
		return nil
	})
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.run("a", lifecycle.Running, lifecycle.Stopped, 1)
	e.waitCommitted(t, "a", lifecycle.Stopped, 1)
	e.mu.Lock()
	before := e.decided["a"]
	e.mu.Unlock()
	e.j.Delete("a")
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.decided["a"] > before
	}, 5*time.Second, time.Millisecond, "the controller is woken")
	v, _ := e.j.View("a")
	require.True(t, v.DeleteRefused)
	require.Equal(t, Owned, v.Ownership, "the row is not closed: the sweep tries again")
	c, _ := e.j.Committed("a")
	require.Equal(t, ReasonRecordRejected, c.Problem.Reason)
	require.EqualValues(t, 1, deletes.Load())
	e.j.Delete("a")
	require.Eventually(t, func() bool { return deletes.Load() == 2 }, 5*time.Second, time.Millisecond,
		"asked again, it is tried again")
}
