package controllers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
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
