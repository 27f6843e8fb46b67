package controllers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// TestARetryWaitsForTheAbandonedRun: a run that ignores its timeout is abandoned (its slot
// freed, its goroutine still running); the retry that follows does not start beside it, but
// once it returned, and the status says why it waits meanwhile.
func TestARetryWaitsForTheAbandonedRun(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("stubborn", "stubborn", `{"for":"5s"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.Timeout = &metav1.Duration{Duration: time.Second}
		b.Spec.MaxRetries = 1
		b.Spec.Backoff = &v1alpha1.Backoff{Initial: &metav1.Duration{Duration: 100 * time.Millisecond}}
	})
	uid := string(bt.UID)
	h.waitPhase("stubborn", v1alpha1.PhasePending, func(b *v1alpha1.BackgroundTask) bool {
		c := findCondition(b, v1alpha1.ConditionAbandoned)
		return b.Status.Attempt == 2 && c != nil && c.Status == metav1.ConditionTrue
	})
	// The retry ran once the abandoned run returned (and, as stubborn as the first, it was
	// abandoned too: a failure with no retries left).
	require.Eventually(t, func() bool {
		hist := h.history(uid)
		return hist[len(hist)-1] == "RUNNING>FAILED@2"
	}, waitTimeout, 50*time.Millisecond, "the retry ran: %v", h.history(uid))
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FAILED@1", "FAILED>PENDING@2", "PENDING>RUNNING@2", "RUNNING>FAILED@2"},
		h.history(uid))
	require.Empty(t, h.probes.doubles(), "the retry never ran beside the abandoned run")
	h.waitPhase("stubborn", v1alpha1.PhaseFailed, hasCondition(v1alpha1.ConditionAbandoned, metav1.ConditionFalse, "Returned"))
}

// TestShutdownKeepsTheLeaseWhileARunIgnoresIt: an operator that shuts down while a run ignores
// the cancellation keeps its membership until that goroutine returned, so the replica that
// takes the task over never runs it beside the old one.
func TestShutdownKeepsTheLeaseWhileARunIgnoresIt(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	bt := h.create("stubborn", "stubborn", `{"for":"6s"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)
	require.Eventually(t, func() bool { return h.probes.runningOf(uid) == 1 }, waitTimeout, 10*time.Millisecond)
	first.stop() // its run ignores the shutdown for longer than the stop grace
	h.startOperator(operatorConfig{})
	h.waitRow(uid, lifecycle.Finished)
	require.Empty(t, h.probes.doubles(), "the task never ran twice at a time")
	hist := h.history(uid)
	require.Equal(t, "RUNNING>RUNNING@1", hist[len(hist)-2], "the second operator resumed it: %v", hist)
}
