package controllers_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestLeaderFailover runs two replicas with leader election, as the Deployment does: only the
// leader runs tasks, and when it goes away the other one takes over and resumes them from their
// checkpoints.
func TestLeaderFailover(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{leaderElect: true})
	select {
	case <-first.elected:
	case <-time.After(waitTimeout):
		t.Fatal("the first replica never became leader")
	}
	second := h.startOperator(operatorConfig{leaderElect: true})

	bt := h.create("ha", "steps", `{"steps":150,"interval":"20ms"}`)
	uid := string(bt.UID)
	require.Eventually(t, func() bool { return h.checkpointNext(uid) >= 5 }, waitTimeout, 20*time.Millisecond)
	require.False(t, isClosed(second.elected), "the standby is not leader")
	_, adopted := second.op.Journal.View(uid)
	require.False(t, adopted, "the standby runs nothing")

	before := h.checkpointNext(uid)
	first.stop() // releases the Lease on the way out
	select {
	case <-second.elected:
	case <-time.After(waitTimeout):
		t.Fatal("the standby never took over")
	}
	done := h.waitPhase("ha", v1alpha1.PhaseFinished)
	require.GreaterOrEqual(t, resultStartedAt(t, done), before, "the new leader resumed from the checkpoint")
	h.waitRow(uid, lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
	require.Empty(t, h.probes.doubles())
}

// TestLosingTheLeadershipStopsNothing: the leader's Lease is taken from it (as when its
// renewals do not reach the API server in time). It stops leading and campaigns again, but it
// keeps running the task it owns, which records nothing new (one execution across the loss);
// tasks created afterwards are adopted by whoever leads. Ending the process on a lost election
// would stop every task it owns.
func TestLosingTheLeadershipStopsNothing(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{leaderElect: true})
	select {
	case <-first.elected:
	case <-time.After(waitTimeout):
		t.Fatal("the first replica never became leader")
	}
	second := h.startOperator(operatorConfig{leaderElect: true})
	bt := h.create("long", "steps", `{"steps":100000,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)

	// Take the Lease: another holder, just renewed.
	lease := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: h.ns, Name: controllers.LeaderElectionID(controllers.DefaultDeployment)}
	require.NoError(t, h.c.Get(h.ctx, key, lease))
	lease.Spec.HolderIdentity = ptr.To("thief")
	lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	lease.Spec.AcquireTime = lease.Spec.RenewTime
	require.NoError(t, h.c.Update(h.ctx, lease))
	require.Eventually(t, func() bool { return !first.op.Leading() }, waitTimeout, 50*time.Millisecond,
		"the first replica sees it no longer leads")

	before := h.checkpointNext(uid)
	require.Eventually(t, func() bool { return h.checkpointNext(uid) > before+10 }, waitTimeout, 50*time.Millisecond,
		"the task goes on running on the replica that lost the leadership")
	select {
	case err := <-first.done:
		t.Fatalf("the replica that lost the leadership stopped: %v", err)
	default:
	}

	// Someone leads again (the thief's Lease expires), and adopts new tasks.
	require.Eventually(t, func() bool { return first.op.Leading() || second.op.Leading() }, waitTimeout, 50*time.Millisecond)
	h.create("after", "countdown", `{"from":1,"interval":"1ms"}`)
	h.waitPhase("after", v1alpha1.PhaseFinished)

	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1"}, h.history(uid), "one execution across the loss")
	_, onFirst := first.op.Journal.View(uid)
	require.True(t, onFirst, "the task stayed with its owner")
	require.Empty(t, h.probes.doubles())
}
