package controllers_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/store"
)

// TestAStaleTaskIsAdoptedAgainOnANonLeader: a task whose row changed under its owner (Stale) is
// adopted again from the row by that owner at once, leader or not: a replica that dropped it
// would leave it run by nobody until the next sweep.
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
// database takes it. A silent refusal would leave the task tracked, run nowhere, and every sweep
// asking for the same refused write again.
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

// claimStatements counts the statements that move rows to a new owner (store.Claim and
// store.ClaimFrom).
type claimStatements struct{ n atomic.Int64 }

func (c *claimStatements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "SET owner = CAST(") {
		c.n.Add(1)
	}
	return ctx
}

func (c *claimStatements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestAGoneOwnersTasksAreTakenOverAtOnce: when an owner stops renewing both of its records, a
// replica that watched its Lease takes every one of its tasks over as soon as both expired, in
// one claim statement, without leading and without telling each task that it is owned
// elsewhere. Nobody here leads (a thief holds the leader Lease): the takeover needs no leader,
// judges the Lease from its last observed change rather than from the first look (which would
// wait a second lease duration), and claims in one statement, not one statement and one Event a
// task.
func TestAGoneOwnersTasksAreTakenOverAtOnce(t *testing.T) {
	h := newHarness(t)
	epoch, err := h.repo.NextEpoch(h.ctx)
	require.NoError(t, err)
	ghost := store.Owner{Name: "ghost", Epoch: epoch}
	require.NoError(t, h.repo.JoinMember(h.ctx, ghost, controllers.DefaultDeployment, 10*time.Second))
	ghostLease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: membership.LeaseName("ghost"),
			Labels:      map[string]string{membership.LabelMember: controllers.DefaultDeployment},
			Annotations: map[string]string{membership.AnnotationEpoch: strconv.FormatInt(epoch, 10)}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("ghost"), LeaseDurationSeconds: ptr.To[int32](10),
			RenewTime: &metav1.MicroTime{Time: time.Now()}},
	}
	require.NoError(t, h.c.Create(h.ctx, ghostLease))
	require.NoError(t, h.c.Create(h.ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: controllers.LeaderElectionID(controllers.DefaultDeployment)},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("thief"), LeaseDurationSeconds: ptr.To[int32](3600),
			RenewTime: &metav1.MicroTime{Time: time.Now()}},
	}))
	const n = 20
	var uids []string
	for i := range n {
		bt := h.create(fmt.Sprintf("ghosts-%d", i), "steps", `{"steps":100000,"interval":"20ms"}`)
		_, _, err := h.repo.CreateTask(h.ctx, store.NewTask{UID: string(bt.UID), Namespace: h.ns, Name: bt.Name, TaskName: "steps",
			Desired: lifecycle.DesiredRunning, Owner: ghost, At: time.Now()})
		require.NoError(t, err)
		uids = append(uids, string(bt.UID))
	}
	claims := &claimStatements{}
	op := h.startOperator(operatorConfig{leaderElect: true, statements: claims})
	// The ghost renews for a while (the operator watches it), then dies.
	for range 3 {
		time.Sleep(time.Second)
		require.NoError(t, h.c.Get(h.ctx, client.ObjectKeyFromObject(ghostLease), ghostLease))
		ghostLease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		require.NoError(t, h.c.Update(h.ctx, ghostLease))
		require.NoError(t, h.repo.RenewMember(h.ctx, epoch, 10*time.Second))
	}
	me := op.op.Member.Owner()
	for _, uid := range uids {
		require.Eventually(t, func() bool {
			row, err := h.repo.GetTask(h.ctx, uid)
			return err == nil && row.OwnerEpoch != nil && *row.OwnerEpoch == me.Epoch && row.Status == lifecycle.Running
		}, 40*time.Second, 50*time.Millisecond, "the ghost's task %s runs here", uid)
	}
	require.False(t, op.op.Leading(), "without leading")
	require.LessOrEqual(t, claims.n.Load(), int64(2), "claimed in one statement (two if a reconcile raced the watch)")
	for _, uid := range uids {
		require.NotContains(t, strings.Join(h.events(uid), "\n"), "OwnedElsewhere", "an owner about to be gone is no news")
	}
}
