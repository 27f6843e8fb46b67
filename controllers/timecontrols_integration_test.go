package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// TestStartAfterHoldsTheStartBack: a task with spec.startAfter waits Pending (Ready reason
// Scheduled, status.scheduledTime) and starts at that time, not before; a restart after it is
// not delayed.
func TestStartAfterHoldsTheStartBack(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	at := time.Now().Add(5 * time.Second).Truncate(time.Second) // the API keeps seconds
	bt := h.create("later", "countdown", `{"from":2,"interval":"10ms"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.StartAfter = &metav1.Time{Time: at}
	})
	uid := string(bt.UID)
	waiting := h.waitPhase("later", v1alpha1.PhasePending, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonScheduled))
	require.NotNil(t, waiting.Status.ScheduledTime, "kubectl get shows when it starts")
	require.True(t, at.Equal(waiting.Status.ScheduledTime.Time))
	require.Contains(t, waiting.Status.Message, at.UTC().Format(time.RFC3339))
	require.Equal(t, int32(0), waiting.Status.Attempt)

	h.waitPhase("later", v1alpha1.PhaseFinished)
	row := h.waitRow(uid, lifecycle.Finished)
	require.NotNil(t, row.StartTime)
	require.False(t, row.StartTime.Before(at), "started at %s, before spec.startAfter %s", row.StartTime, at)
	require.Nil(t, h.get("later").Status.ScheduledTime, "no longer scheduled once started")

	h.patchSpec("later", `{"restartGeneration":1}`)
	h.waitPhase("later", v1alpha1.PhaseFinished, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Attempt == 2 })
}

// TestResumeAtResumesAPausedTask: a task paused with spec.resumeAt resumes by itself at that
// time, continuing the same attempt, while spec.state still says Paused (the controller never
// writes spec); Ready and the row say what happened.
func TestResumeAtResumesAPausedTask(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("nap", "steps", `{"steps":60,"interval":"25ms"}`)
	uid := string(bt.UID)
	h.waitPhase("nap", v1alpha1.PhaseRunning, hasProgress)

	at := time.Now().Add(5 * time.Second).Truncate(time.Second)
	h.patchSpec("nap", fmt.Sprintf(`{"state":"Paused","resumeAt":%q}`, at.UTC().Format(time.RFC3339)))
	paused := h.waitPhase("nap", v1alpha1.PhasePaused, func(b *v1alpha1.BackgroundTask) bool {
		ready := findCondition(b, v1alpha1.ConditionReady)
		return ready != nil && ready.Status == metav1.ConditionTrue && strings.Contains(ready.Message, "runs by itself from")
	})
	require.NotNil(t, paused.Status.ScheduledTime)
	require.True(t, at.Equal(paused.Status.ScheduledTime.Time))

	done := h.waitPhase("nap", v1alpha1.PhaseFinished)
	require.Equal(t, v1alpha1.DesiredPaused, done.Spec.State, "the controller never writes spec")
	require.Equal(t, int32(1), done.Status.Attempt, "resumed, not restarted")
	h.waitRow(uid, lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>PAUSED@1", "PAUSED>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
	var resumedAt time.Time
	require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT at FROM background_task_transitions
		WHERE task_uid = $1 AND from_status = 'PAUSED' AND to_status = 'RUNNING'`, uid).Scan(&resumedAt))
	require.False(t, resumedAt.Before(at), "resumed at %s, before spec.resumeAt %s", resumedAt, at)
}

// TestResumeAtWhileRunningChangesNothing: resumeAt means nothing unless spec.state is Paused.
func TestResumeAtWhileRunningChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	h.create("busy", "countdown", `{"from":2,"interval":"10ms"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.ResumeAt = &metav1.Time{Time: at}
	})
	done := h.waitPhase("busy", v1alpha1.PhaseFinished)
	require.Nil(t, done.Status.ScheduledTime)
}
