package controllers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/store"
)

// TestAStaleTaskIsAdoptedAgainOnANonLeader: a task whose row changed under its owner (Stale) is
// adopted again from the row by that owner at once, leader or not. Before, a replica that did
// not lead stopped the run and forgot the task, and nobody ran it until the next sweep.
func TestAStaleTaskIsAdoptedAgainOnANonLeader(t *testing.T) {
	h := newHarness(t)
	op := h.startOperator(operatorConfig{leaderElect: true})
	select {
	case <-op.elected:
	case <-time.After(waitTimeout):
		t.Fatal("never elected")
	}
	bt := h.create("stale", "steps", `{"steps":100000,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)

	// Nobody leads for the rest of the test: a thief holds the leader Lease for an hour.
	lease := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: h.ns, Name: controllers.LeaderElectionID(controllers.DefaultDeployment)}
	require.NoError(t, h.c.Get(h.ctx, key, lease))
	lease.Spec.HolderIdentity = ptr.To("thief")
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](3600)
	lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	require.NoError(t, h.c.Update(h.ctx, lease))
	require.Eventually(t, func() bool { return !op.op.Leading() }, waitTimeout, 20*time.Millisecond)

	// The row moves on behind its owner's back (same owner, a transition it did not write).
	row, err := h.repo.GetTask(h.ctx, uid)
	require.NoError(t, err)
	tr, err := lifecycle.Next(row.Record(), lifecycle.Event{To: lifecycle.Running, Attempt: row.Attempt,
		Reason: lifecycle.ReasonStalled, At: time.Now()})
	require.NoError(t, err)
	owner, _ := row.Owned()
	require.NoError(t, h.repo.RecordTransition(h.ctx, store.TransitionWrite{UID: uid, Owner: owner, Prev: row.Record(), Transition: tr}))
	// Its next write is refused as stale: stopping it is one.
	h.patchSpec("stale", `{"state":"Stopped"}`)
	h.waitRow(uid, lifecycle.Stopped)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>RUNNING@1", "RUNNING>STOPPED@1"}, h.history(uid))
	_, tracked := op.op.Journal.View(uid)
	require.True(t, tracked, "adopted again by its owner")
	require.Empty(t, h.probes.doubles())
}

// TestARefusedDeletionIsNotLeftTracked: when PostgreSQL refuses for good to close the row of a
// deleted task, the operator stops tracking it at once and the sweep closes the row once the
// database takes it. Before, the refusal was silent: the task stayed tracked, run nowhere, and
// every sweep asked for the same refused write again.
func TestARefusedDeletionIsNotLeftTracked(t *testing.T) {
	h := newHarness(t)
	op := h.startOperator(operatorConfig{})
	bt := h.create("undeletable", "steps", `{"steps":100000,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)
	h.exec(`CREATE FUNCTION refuse_close() RETURNS trigger AS $$
BEGIN
  IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
    RAISE EXCEPTION 'injected: this row cannot be closed now' USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql`)
	h.exec(`CREATE TRIGGER refuse_close BEFORE UPDATE ON background_tasks FOR EACH ROW EXECUTE FUNCTION refuse_close()`)
	require.NoError(t, h.c.Delete(h.ctx, bt))
	h.requireNotRunning(uid)
	require.Eventually(t, func() bool { _, tracked := op.op.Journal.View(uid); return !tracked }, waitTimeout, 20*time.Millisecond,
		"a task whose row cannot be closed is not kept tracked")
	h.exec(`DROP TRIGGER refuse_close ON background_tasks`)
	row := h.waitDeleted(uid)
	require.Equal(t, lifecycle.Stopped, row.Status)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>STOPPED@1"}, h.history(uid))
}
