package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// checkpointNext reads the steps task's checkpoint from PostgreSQL: 0 when there is none, -1
// while the row does not exist yet (it is polled from require.Eventually).
func (h *harness) checkpointNext(uid string) int {
	data, _, err := h.repo.LoadCheckpoint(h.ctx, uid)
	if err != nil {
		return -1
	}
	var cp stepsCheckpoint
	if data == nil || json.Unmarshal(data, &cp) != nil {
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

// TestOperatorRestartResumesFromCheckpoint is the seed's "load RUNNING/PAUSED tasks on
// startup": a manager is stopped and a new one started in the same test.
func TestOperatorRestartResumesFromCheckpoint(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	long := h.create("long", "steps", `{"steps":120,"interval":"25ms"}`)
	parked := h.create("parked", "steps", `{"steps":120,"interval":"25ms"}`)
	queued := h.create("queued", "steps", `{"steps":5,"interval":"1ms"}`, func(b *v1alpha1.BackgroundTask) { b.Spec.State = v1alpha1.DesiredPaused })

	require.Eventually(t, func() bool { return h.checkpointNext(string(long.UID)) >= 5 }, waitTimeout, 20*time.Millisecond)
	require.Eventually(t, func() bool { return h.checkpointNext(string(parked.UID)) >= 3 }, waitTimeout, 20*time.Millisecond)
	h.patchSpec("parked", `{"state":"Paused"}`)
	h.waitRow(string(parked.UID), store.StatusPaused)
	h.waitPhase("queued", v1alpha1.PhasePending)

	first.stop() // like SIGTERM: runs are cancelled, nothing is recorded as Stopped
	row, err := h.repo.GetTask(h.ctx, string(long.UID))
	require.NoError(t, err)
	require.Equal(t, store.StatusRunning, row.Status, "a shut-down run stays RUNNING in the durable record")
	longCheckpoint := h.checkpointNext(string(long.UID))
	parkedCheckpoint := h.checkpointNext(string(parked.UID))
	require.Positive(t, longCheckpoint)

	h.startOperator(operatorConfig{})
	done := h.waitPhase("long", v1alpha1.PhaseFinished)
	require.Equal(t, longCheckpoint, resultStartedAt(t, done), "resumed from the last checkpoint, not from zero")
	require.Equal(t, int32(1), done.Status.Attempt, "resuming is not a new attempt")

	time.Sleep(200 * time.Millisecond)
	require.Equal(t, v1alpha1.PhasePaused, h.get("parked").Status.Phase, "a paused task comes back paused")
	require.Equal(t, v1alpha1.PhasePending, h.get("queued").Status.Phase, "a pending task stays pending")
	h.patchSpec("parked", `{"state":"Running"}`)
	h.patchSpec("queued", `{"state":"Running"}`)
	require.Equal(t, parkedCheckpoint, resultStartedAt(t, h.waitPhase("parked", v1alpha1.PhaseFinished)))
	require.Equal(t, 0, resultStartedAt(t, h.waitPhase("queued", v1alpha1.PhaseFinished)))

	h.waitRow(string(long.UID), store.StatusFinished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(string(long.UID)))
	h.waitRow(string(parked.UID), store.StatusFinished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>PAUSED@1", "PAUSED>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(string(parked.UID)))
	h.waitRow(string(queued.UID), store.StatusFinished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(string(queued.UID)))
}

// TestStaleWriterIsFenced runs two operators on one database without leader election (a split
// brain): the second adopts the task, and the first one's next transition is rejected by the
// guard, so it stops its copy of the run instead of overwriting the record.
func TestStaleWriterIsFenced(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	bt := h.create("contested", "steps", `{"steps":100000,"interval":"10ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, store.StatusRunning)

	second := h.startOperator(operatorConfig{})
	require.Eventually(t, func() bool {
		st, ok := second.op.Journal.Get(uid)
		return ok && st.HandedAttempt == 1
	}, waitTimeout, 20*time.Millisecond, "the second operator adopts the task")
	// The first operator's next write (a checkpoint is not a transition; pausing makes one).
	h.patchSpec("contested", `{"state":"Paused"}`)
	require.Eventually(t, func() bool {
		st, ok := first.op.Journal.Get(uid)
		return ok && st.Fenced
	}, waitTimeout, 20*time.Millisecond, "the stale writer is fenced")
	require.Eventually(t, func() bool {
		snap, ok := first.op.Runner.Snapshot(uidKey(uid))
		return !ok || snap.State.Terminal()
	}, waitTimeout, 20*time.Millisecond, "the fenced operator stops its copy of the run")
	h.history(uid) // still contiguous, nothing overwritten
}

// TestPostgresOutageLosesNothing stops PostgreSQL mid-run: the operator stays up, says so in
// conditions and /readyz, keeps driving the task, and records every transition once the
// database is back, in order and without duplicates.
func TestPostgresOutageLosesNothing(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	p := h.startOperator(operatorConfig{})
	bt := h.create("survivor", "steps", `{"steps":150,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, store.StatusRunning)
	ready := func() error {
		req, _ := http.NewRequest(http.MethodGet, "/readyz", nil)
		return p.op.DatabaseCheck(time.Second)(req)
	}
	require.NoError(t, ready())

	require.NoError(t, srv.Stop(pgtest.StopImmediate))
	require.Error(t, ready(), "/readyz fails while PostgreSQL is down")

	// Transitions while the database is away: pause, resume, finish.
	h.patchSpec("survivor", `{"state":"Paused"}`)
	h.waitPhase("survivor", v1alpha1.PhasePaused, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionFalse, "DatabaseUnreachable"))
	h.patchSpec("survivor", `{"state":"Running"}`)
	h.waitPhase("survivor", v1alpha1.PhaseFinished)
	// A task created during the outage waits for the database to get its record.
	h.create("newcomer", "countdown", `{"from":1,"interval":"1ms"}`)
	h.waitPhase("newcomer", "", hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionFalse, "DatabaseUnreachable"))

	require.NoError(t, srv.Restart())
	require.Eventually(t, func() bool { return ready() == nil }, waitTimeout, 50*time.Millisecond)
	h.waitRow(uid, store.StatusFinished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>PAUSED@1", "PAUSED>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
	h.waitPhase("survivor", v1alpha1.PhaseFinished, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionTrue, ""))
	h.waitPhase("newcomer", v1alpha1.PhaseFinished, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionTrue, ""))
}

// TestDeleteWhileDatabaseDownIsNotStuck deletes a task while PostgreSQL is down: the finalizer
// gives up after its timeout with a Warning event instead of blocking the deletion forever,
// and the next operator start marks the orphaned row deleted (history kept).
func TestDeleteWhileDatabaseDownIsNotStuck(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	first := h.startOperator(operatorConfig{finalizerTimeout: 2 * time.Second})
	bt := h.create("orphan", "steps", `{"steps":100000,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, store.StatusRunning)

	require.NoError(t, srv.Stop(pgtest.StopImmediate))
	require.NoError(t, h.c.Delete(h.ctx, bt))
	require.Eventually(t, func() bool {
		err := h.c.Get(h.ctx, client.ObjectKeyFromObject(bt), &v1alpha1.BackgroundTask{})
		return apierrors.IsNotFound(err)
	}, waitTimeout, 50*time.Millisecond, "the deletion completes despite the database being down")
	require.Eventually(t, func() bool {
		for _, e := range h.events(uid) {
			if e == "Warning/RecordIncomplete" {
				return true
			}
		}
		return false
	}, waitTimeout, 50*time.Millisecond, "a Warning event says the record is incomplete")

	first.stop()
	require.NoError(t, srv.Restart())
	h.startOperator(operatorConfig{})
	require.Eventually(t, func() bool {
		_, err := h.repo.GetTask(h.ctx, uid)
		return errors.Is(err, store.ErrNotFound)
	}, waitTimeout, 50*time.Millisecond, "the startup loader marks the orphaned row deleted")
	require.NotEmpty(t, h.history(uid), "history is kept")
}
