package controllers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// checkpointNext reads the steps task's checkpoint from PostgreSQL: 0 when there is none, -1
// while the row does not exist yet (it is polled from require.Eventually).
func (h *harness) checkpointNext(uid string) int {
	row, err := h.repo.GetTask(h.ctx, uid)
	if err != nil {
		return -1
	}
	var cp stepsCheckpoint
	if data := row.CurrentCheckpoint(); data == nil || json.Unmarshal(data, &cp) != nil {
		return 0
	}
	return cp.Next
}

func resultStartedAt(t *testing.T, bt *v1alpha1.BackgroundTask) int {
	t.Helper()
	var r struct {
		StartedAt int `json:"startedAt"`
	}
	require.NotNil(t, bt.Status.Result)
	require.NoError(t, json.Unmarshal(bt.Status.Result.Raw, &r))
	return r.StartedAt
}

// newHarnessWithOwnDatabaseServer gives an outage test a PostgreSQL server of its own to stop
// and restart, so other tests are not disturbed.
func newHarnessWithOwnDatabaseServer(t *testing.T) (*harness, *pgtest.Server) {
	t.Helper()
	if os.Getenv("DATABASE_URL") != "" {
		t.Skip("needs a throwaway PostgreSQL it can stop; DATABASE_URL is set")
	}
	var srv *pgtest.Server
	h := newHarnessOn(t, func() *pgtest.Server {
		var err error
		// synchronous_commit=on: an immediate stop must not lose acknowledged commits.
		srv, err = pgtest.Start(context.Background(), pgtest.WithSetting("synchronous_commit", "on"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		return srv
	})
	return h, srv
}

// TestOperatorRestartResumesFromCheckpoint: tasks Running or Paused when the operator stopped
// are loaded again when it starts: a manager is stopped and a new one started in the same test.
func TestOperatorRestartResumesFromCheckpoint(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	long := h.create("long", "steps", `{"steps":120,"interval":"25ms"}`)
	parked := h.create("parked", "steps", `{"steps":120,"interval":"25ms"}`)
	queued := h.create("queued", "steps", `{"steps":5,"interval":"1ms"}`, func(b *v1alpha1.BackgroundTask) { b.Spec.State = v1alpha1.DesiredPaused })

	require.Eventually(t, func() bool { return h.checkpointNext(string(long.UID)) >= 5 }, waitTimeout, 20*time.Millisecond)
	require.Eventually(t, func() bool { return h.checkpointNext(string(parked.UID)) >= 3 }, waitTimeout, 20*time.Millisecond)
	h.patchSpec("parked", `{"state":"Paused"}`)
	h.waitRow(string(parked.UID), lifecycle.Paused)
	h.waitPhase("queued", v1alpha1.PhasePending)

	first.stop() // like SIGTERM: runs are cancelled, nothing is recorded as Stopped
	row, err := h.repo.GetTask(h.ctx, string(long.UID))
	require.NoError(t, err)
	require.Equal(t, lifecycle.Running, row.Status, "a shut-down run stays RUNNING in the durable record")
	longCheckpoint := h.checkpointNext(string(long.UID))
	parkedCheckpoint := h.checkpointNext(string(parked.UID))
	require.Positive(t, longCheckpoint)

	second := h.startOperator(operatorConfig{})
	done := h.waitPhase("long", v1alpha1.PhaseFinished)
	require.Equal(t, longCheckpoint, resultStartedAt(t, done), "resumed from the last checkpoint, not from zero")
	require.Equal(t, int32(1), done.Status.Attempt, "resuming is not a new attempt")

	h.settle(second, "parked")
	h.settle(second, "queued")
	require.Equal(t, v1alpha1.PhasePaused, h.get("parked").Status.Phase, "a paused task comes back paused")
	require.Equal(t, v1alpha1.PhasePending, h.get("queued").Status.Phase, "a pending task stays pending")
	h.patchSpec("parked", `{"state":"Running"}`)
	h.patchSpec("queued", `{"state":"Running"}`)
	require.Equal(t, parkedCheckpoint, resultStartedAt(t, h.waitPhase("parked", v1alpha1.PhaseFinished)))
	require.Equal(t, 0, resultStartedAt(t, h.waitPhase("queued", v1alpha1.PhaseFinished)))

	h.waitRow(string(long.UID), lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(string(long.UID)))
	h.waitRow(string(parked.UID), lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>PAUSED@1", "PAUSED>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(string(parked.UID)))
	h.waitRow(string(queued.UID), lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(string(queued.UID)))
	require.Empty(t, h.probes.doubles())
}

// skewedClock is the real clock, offset: a node whose clock runs ahead.
type skewedClock struct {
	clock.RealClock
	skew time.Duration
}

func (c skewedClock) Now() time.Time                  { return time.Now().Add(c.skew) }
func (c skewedClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// TestASkewedClockTakesNothingFromALiveOwner: an operator whose clock runs 30 s ahead (three
// Lease durations) does not believe the first one's Lease expired, as it judges expiry by when
// it saw the Lease change on its own monotonic clock, not by the holder's renewTime against its
// wall clock.
func TestASkewedClockTakesNothingFromALiveOwner(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("contested", "steps", `{"steps":100000,"interval":"10ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)

	second := h.startOperator(operatorConfig{clock: skewedClock{skew: 30 * time.Second}})
	require.Eventually(t, func() bool {
		_, seen := second.op.Journal.View(uid)
		return !seen && len(h.events(uid)) > 0 && slices.Contains(h.events(uid), "Warning/OwnedElsewhere")
	}, waitTimeout, 50*time.Millisecond, "the skewed operator looked at the task and left it to its owner")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		row, err := h.repo.GetTask(h.ctx, uid)
		require.NoError(t, err)
		owner, _ := row.Owned()
		require.Equal(t, "op-1", owner.Name, "the live owner keeps its task")
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAnOwnerWhoseTaskWasTakenIsFenced: the task of a live operator is taken from it anyway
// (here by hand in the database, standing for any claim that went wrong). The row's fencing
// token settles it: the first operator's next write is refused, it says so, stops its copy of
// the run and records nothing more; another operator adopts the task from the taker, and the
// history stays contiguous.
func TestAnOwnerWhoseTaskWasTakenIsFenced(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	bt := h.create("contested", "steps", `{"steps":100000,"interval":"10ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)

	_, err := h.sql.Exec(h.ctx, `UPDATE background_tasks SET owner = 'intruder', owner_epoch = nextval('taskpilot_owner_epoch')
		WHERE uid = $1`, uid)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, tracked := first.op.Journal.View(uid)
		snap, inRunner := first.op.Runner.Snapshot(runner.Key(uid))
		return !tracked && (!inRunner || snap.Status.Terminal())
	}, waitTimeout, 20*time.Millisecond, "the fenced operator stops its copy of the run and lets the task go")
	require.Eventually(t, func() bool {
		return slices.Contains(h.events(uid), "Warning/OwnershipLost")
	}, waitTimeout, 50*time.Millisecond, "an Event says so")

	// The intruder has neither a Lease nor a membership row: it is gone, and the second
	// operator takes the task over.
	second := h.startOperator(operatorConfig{})
	require.Eventually(t, func() bool {
		_, tracked := second.op.Journal.View(uid)
		return tracked
	}, waitTimeout, 20*time.Millisecond, "another operator adopts the task from the taker")
	h.patchSpec("contested", `{"state":"Stopped"}`)
	h.waitRow(uid, lifecycle.Stopped)
	hist := h.history(uid) // contiguous, each step legal
	require.Equal(t, "RUNNING>STOPPED@1", hist[len(hist)-1])
}

// TestPostgresOutageLosesNothing stops PostgreSQL mid-run: the operator stays up, says so in
// conditions and /readyz, keeps driving the task, shows nothing the database does not hold
// yet, and records every transition once the database is back, in order and without
// duplicates.
func TestPostgresOutageLosesNothing(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	p := h.startOperator(operatorConfig{})
	bt := h.create("survivor", "steps", `{"steps":150,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)
	ready := func() error {
		req, _ := http.NewRequest(http.MethodGet, "/readyz", nil)
		return p.op.DatabaseCheck()(req)
	}
	require.NoError(t, ready())

	require.NoError(t, srv.Stop(pgtest.StopImmediate))
	require.Error(t, ready(), "/readyz fails while PostgreSQL is down")

	// Transitions while the database is away: pause, resume, finish. The run obeys at once; the
	// object keeps showing what PostgreSQL holds, and says that more is waiting.
	h.patchSpec("survivor", `{"state":"Paused"}`)
	require.Eventually(t, func() bool {
		snap, _ := p.op.Runner.Snapshot(runner.Key(uid))
		return snap.Status == lifecycle.Paused
	}, waitTimeout, 20*time.Millisecond)
	shown := h.waitPhase("survivor", v1alpha1.PhaseRunning, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionFalse, "DatabaseUnreachable"))
	require.Equal(t, v1alpha1.PhaseRunning, shown.Status.Phase, "Paused is not shown before it is recorded")
	h.patchSpec("survivor", `{"state":"Running"}`)
	require.Eventually(t, func() bool {
		snap, _ := p.op.Runner.Snapshot(runner.Key(uid))
		return snap.Status == lifecycle.Finished
	}, waitTimeout, 20*time.Millisecond)
	// A task created during the outage waits for the database to get its record.
	h.create("newcomer", "countdown", `{"from":1,"interval":"1ms"}`)
	h.waitPhase("newcomer", "", hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionFalse, "DatabaseUnreachable"))
	require.Nil(t, h.get("survivor").Status.Result, "no result before the record has it")

	require.NoError(t, srv.Restart())
	require.Eventually(t, func() bool { return ready() == nil }, waitTimeout, 50*time.Millisecond)
	h.waitRow(uid, lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>PAUSED@1", "PAUSED>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
	h.waitPhase("survivor", v1alpha1.PhaseFinished, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionTrue, ""))
	h.waitPhase("newcomer", v1alpha1.PhaseFinished, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionTrue, ""))
}

// TestDeleteWhileDatabaseDownIsNotStuck deletes a task while PostgreSQL is down: the object
// goes at once (nothing holds it), the run stops at once, and the row is soft-deleted with its
// history once the database is back. A task deleted while no operator runs is soft-deleted by
// the next operator's sweep.
func TestDeleteWhileDatabaseDownIsNotStuck(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	first := h.startOperator(operatorConfig{})
	bt := h.create("orphan", "steps", `{"steps":100000,"interval":"20ms"}`)
	uid := string(bt.UID)
	other := h.create("unattended", "steps", `{"steps":100000,"interval":"20ms"}`)
	h.waitRow(uid, lifecycle.Running)
	h.waitRow(string(other.UID), lifecycle.Running)

	require.NoError(t, srv.Stop(pgtest.StopImmediate))
	require.NoError(t, h.c.Delete(h.ctx, bt))
	require.True(t, apierrors.IsNotFound(h.c.Get(h.ctx, client.ObjectKeyFromObject(bt), &v1alpha1.BackgroundTask{})))
	h.requireNotRunning(uid)

	require.NoError(t, srv.Restart())
	require.Equal(t, lifecycle.Stopped, h.waitDeleted(uid).Status)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>STOPPED@1"}, h.history(uid))

	first.stop()
	require.NoError(t, h.c.Delete(h.ctx, other)) // while no operator runs
	h.startOperator(operatorConfig{})
	h.waitDeleted(string(other.UID))
	require.NotEmpty(t, h.history(string(other.UID)), "history is kept")
}

// TestAnOutageCannotGrowTheJournalWithoutBound: while PostgreSQL is down, a user who flips
// spec.state back and forth (each flip pauses or resumes the run, a transition to record)
// cannot make the operator queue transitions without limit: past its byte bound the journal
// accepts what runs produce, and pauses, resumes and starts wait, saying why. When the database
// is back, everything that was accepted is written, in order.
func TestAnOutageCannotGrowTheJournalWithoutBound(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	p := h.startOperator(operatorConfig{journalMaxBytes: 4 << 10})
	bt := h.create("flipped", "steps", `{"steps":2000,"interval":"10ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)
	require.NoError(t, srv.Stop(pgtest.StopImmediate))

	for i := range 60 {
		state := "Paused"
		if i%2 == 1 {
			state = "Running"
		}
		h.patchSpec("flipped", `{"state":"`+state+`"}`)
		// Wait until the operator acted on the flip, or deferred it.
		require.Eventually(t, func() bool {
			snap, _ := p.op.Runner.Snapshot(runner.Key(uid))
			deferred := strings.Contains(p.op.Journal.Deferring(), "wait for PostgreSQL")
			return deferred || (state == "Paused") == (snap.Status == lifecycle.Paused || snap.PauseRequested)
		}, waitTimeout, 10*time.Millisecond)
	}
	require.LessOrEqual(t, p.op.Journal.Backlog(), 30, "the transitions waiting for PostgreSQL stay bounded")
	require.LessOrEqual(t, p.op.Journal.BacklogBytes(), int64(8<<10))
	h.patchSpec("flipped", `{"state":"Paused"}`)
	ready := findCondition(h.waitPhase("flipped", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool {
		c := findCondition(b, v1alpha1.ConditionReady)
		return c != nil && c.Reason == "Deferred"
	}), v1alpha1.ConditionReady)
	require.Contains(t, ready.Message, "wait for PostgreSQL", "the status says why the pause waits")

	require.NoError(t, srv.Restart())
	h.patchSpec("flipped", `{"state":"Stopped"}`)
	h.waitRow(uid, lifecycle.Stopped)
	hist := h.history(uid) // contiguous and legal: nothing accepted was lost
	require.True(t, strings.HasSuffix(hist[len(hist)-1], ">STOPPED@1"), hist)
}
