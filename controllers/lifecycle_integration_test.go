package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
)

func TestFullLifecycle(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("count", "countdown", `{"from":5,"interval":"20ms"}`)
	uid := string(bt.UID)

	done := h.waitPhase("count", v1alpha1.PhaseFinished)
	require.Equal(t, int32(1), done.Status.Attempt)
	require.NotNil(t, done.Status.StartTime)
	require.NotNil(t, done.Status.EndTime)
	require.NotNil(t, done.Status.LastRunTime)
	require.NotNil(t, done.Status.Result)
	require.JSONEq(t, `{"counted":5}`, string(done.Status.Result.Raw))
	require.Equal(t, done.Generation, done.Status.ObservedGeneration)
	require.True(t, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, "Finished")(done))
	require.True(t, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionTrue, "")(done))
	require.Empty(t, done.Finalizers, "deletion needs no finalizer (one API write less per task)")

	row := h.waitRow(uid, lifecycle.Finished)
	require.Equal(t, 1, row.Attempt)
	require.Equal(t, "count", row.Name)
	require.Equal(t, h.ns, row.Namespace)
	require.Equal(t, "countdown", row.TaskName)
	require.JSONEq(t, `{"counted":5}`, string(row.Result))
	require.NotNil(t, row.StartTime)
	require.NotNil(t, row.EndTime)
	require.NotNil(t, row.LastRunTime)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
	requireMetric(t, h.op, "taskpilot_transitions_total", 2)
	requireMetric(t, h.op, "taskpilot_transition_commit_seconds", 2)

	// GitOps safety: re-applying the same spec never reruns finished work.
	h.patchSpec("count", `{"state":"Running"}`)
	h.settle(h.op, "count") // a wrong rerun would have started by then
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
	require.Empty(t, h.events(uid), "a task that just ran and finished costs no Event")

	// A restart is told, with the whole story since the last Event.
	h.patchSpec("count", `{"restartGeneration":1}`)
	h.waitPhase("count", v1alpha1.PhaseFinished, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Attempt == 2 })
	require.Eventually(t, func() bool {
		return strings.Contains(h.eventNotes(uid), "Finished → Running") && strings.Contains(h.eventNotes(uid), "(attempt 2)")
	}, waitTimeout, 50*time.Millisecond, "an Event tells the restart: %s", h.eventNotes(uid))
}

func TestPauseResumeKeepsProgress(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("steps", "steps", `{"steps":60,"interval":"25ms"}`)
	uid := string(bt.UID)
	h.waitPhase("steps", v1alpha1.PhaseRunning, hasProgress)
	require.Eventually(t, func() bool {
		row, err := h.repo.GetTask(h.ctx, uid)
		return err == nil && row.Status == lifecycle.Running && row.Progress != ""
	}, waitTimeout, 20*time.Millisecond, "progress reaches the row between transitions")

	h.patchSpec("steps", `{"state":"Paused"}`)
	paused := h.waitPhase("steps", v1alpha1.PhasePaused, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, "AsDesired"))
	require.Equal(t, lifecycle.DesiredPaused, h.waitRow(uid, lifecycle.Paused).DesiredState, "spec.state is mirrored for SQL users")
	progress := paused.Status.Progress
	require.NotEmpty(t, progress)
	snap, ok := h.op.op.Runner.Snapshot(runner.Key(uid))
	require.True(t, ok)
	require.Equal(t, lifecycle.Paused, snap.Status, "the run is parked at its pause point: it cannot advance")
	require.Equal(t, progress, snap.Progress)

	h.patchSpec("steps", `{"state":"Running"}`)
	done := h.waitPhase("steps", v1alpha1.PhaseFinished)
	require.Equal(t, int32(1), done.Status.Attempt, "resume continues the same attempt")
	require.JSONEq(t, `{"startedAt":0,"steps":60}`, string(done.Status.Result.Raw), "the same run continued, not a new one")
	h.waitRow(uid, lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>PAUSED@1", "PAUSED>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
}

func TestCreatedPausedStaysPending(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("later", "countdown", `{"from":2,"interval":"10ms"}`, func(b *v1alpha1.BackgroundTask) { b.Spec.State = v1alpha1.DesiredPaused })
	h.waitPhase("later", v1alpha1.PhasePending, hasCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, "AsDesired"))
	h.settle(h.op, "later")
	require.Equal(t, v1alpha1.PhasePending, h.get("later").Status.Phase)
	require.Equal(t, int32(0), h.get("later").Status.Attempt)

	h.patchSpec("later", `{"state":"Running"}`)
	h.waitPhase("later", v1alpha1.PhaseFinished)
	h.waitRow(string(bt.UID), lifecycle.Finished)
}

func TestStopThenRunAgain(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("stop", "steps", `{"steps":400,"interval":"25ms"}`)
	uid := string(bt.UID)
	h.waitPhase("stop", v1alpha1.PhaseRunning, hasProgress)

	h.patchSpec("stop", `{"state":"Stopped"}`)
	stopped := h.waitPhase("stop", v1alpha1.PhaseStopped)
	require.NotNil(t, stopped.Status.EndTime)
	h.waitRow(uid, lifecycle.Stopped)

	h.patchSpec("stop", `{"state":"Running"}`)
	again := h.waitPhase("stop", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Attempt == 2 })
	require.Nil(t, again.Status.EndTime, "a new attempt clears endTime")
	row := h.waitRow(uid, lifecycle.Running)
	require.Equal(t, 2, row.Attempt)
	h.patchSpec("stop", `{"state":"Stopped"}`)
	h.waitPhase("stop", v1alpha1.PhaseStopped)
	h.waitRow(uid, lifecycle.Stopped)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>STOPPED@1", "STOPPED>RUNNING@2", "RUNNING>STOPPED@2"}, h.history(uid))
}

func TestRestartGenerationBump(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("restart", "steps", `{"steps":20,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitPhase("restart", v1alpha1.PhaseFinished)

	h.patchSpec("restart", `{"restartGeneration":1}`)
	done := h.waitPhase("restart", v1alpha1.PhaseFinished, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.Attempt == 2 && b.Status.ObservedRestartGeneration == 1
	})
	require.JSONEq(t, `{"startedAt":0,"steps":20}`, string(done.Status.Result.Raw), "a restart starts from scratch")

	// A bump while running stops the run and starts a new attempt from scratch.
	h.patchSpec("restart", `{"restartGeneration":2,"params":{"steps":400,"interval":"25ms"}}`)
	h.waitPhase("restart", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Attempt == 3 && b.Status.Progress != "" })
	h.patchSpec("restart", `{"restartGeneration":3}`)
	h.waitPhase("restart", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.Attempt == 4 && b.Status.ObservedRestartGeneration == 3
	})
	h.patchSpec("restart", `{"state":"Stopped"}`)
	h.waitPhase("restart", v1alpha1.PhaseStopped)
	h.waitRow(uid, lifecycle.Stopped)
	require.Equal(t, []string{
		"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1",
		"FINISHED>RUNNING@2", "RUNNING>FINISHED@2",
		"FINISHED>RUNNING@3", "RUNNING>STOPPED@3",
		"STOPPED>RUNNING@4", "RUNNING>STOPPED@4",
	}, h.history(uid))
}

func TestRetriesThenSuccess(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("flaky", "flaky", `{"key":"a","failures":2}`, func(b *v1alpha1.BackgroundTask) { b.Spec.MaxRetries = 2 })
	uid := string(bt.UID)
	done := h.waitPhase("flaky", v1alpha1.PhaseFinished)
	require.Equal(t, int32(3), done.Status.Attempt)
	h.waitRow(uid, lifecycle.Finished)
	require.Equal(t, []string{
		"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FAILED@1", "FAILED>PENDING@2",
		"PENDING>RUNNING@2", "RUNNING>FAILED@2", "FAILED>PENDING@3", "PENDING>RUNNING@3", "RUNNING>FINISHED@3",
	}, h.history(uid))
	require.Eventually(t, func() bool {
		notes := h.eventNotes(uid)
		return strings.Contains(notes, "Warning/RetryScheduled") && strings.Contains(notes, "flaky failure 1 of 2")
	}, waitTimeout, 50*time.Millisecond, "an Event tells the failure and the retry: %s", h.eventNotes(uid))
	// Repeated Events of one kind become a series (events.k8s.io); every message is in the history.
	recs, err := h.repo.History(h.ctx, uid)
	require.NoError(t, err)
	var messages []string
	for _, r := range recs {
		messages = append(messages, r.Message)
	}
	require.Contains(t, messages, "flaky failure 2 of 2")
}

func TestRetriesExhausted(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("hopeless", "flaky", `{"key":"b","failures":5}`, func(b *v1alpha1.BackgroundTask) { b.Spec.MaxRetries = 1 })
	failed := h.waitPhase("hopeless", v1alpha1.PhaseFailed)
	require.Equal(t, int32(2), failed.Status.Attempt)
	require.Contains(t, failed.Status.Message, "flaky failure 2 of 5")
	require.True(t, hasCondition(v1alpha1.ConditionDegraded, metav1.ConditionTrue, "")(failed))
	h.waitRow(string(bt.UID), lifecycle.Failed)
}

func TestTimeout(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("slow", "sleep", `{"duration":"1h","tick":"50ms"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.Timeout = &metav1.Duration{Duration: time.Second}
	})
	failed := h.waitPhase("slow", v1alpha1.PhaseFailed)
	require.True(t, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, lifecycle.ReasonDeadlineExceeded)(failed), "%+v", failed.Status.Conditions)
	row := h.waitRow(string(bt.UID), lifecycle.Failed)
	require.Equal(t, 1, row.Attempt)
	recs, err := h.repo.History(h.ctx, string(bt.UID))
	require.NoError(t, err)
	require.Equal(t, lifecycle.ReasonDeadlineExceeded, recs[len(recs)-1].Reason)
}

func TestUnknownTypeAndInvalidParamsFailWithoutRetry(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	unknown := h.create("unknown", "resize-images", `{}`, func(b *v1alpha1.BackgroundTask) { b.Spec.MaxRetries = 3 })
	invalid := h.create("invalid", "countdown", `{"from":-1}`, func(b *v1alpha1.BackgroundTask) { b.Spec.MaxRetries = 3 })

	for name, reason := range map[string]string{"unknown": lifecycle.ReasonUnknownTaskType, "invalid": lifecycle.ReasonInvalidParams} {
		failed := h.waitPhase(name, v1alpha1.PhaseFailed)
		require.True(t, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, reason)(failed), "%s: %+v", name, failed.Status.Conditions)
		require.NotEmpty(t, failed.Status.Message)
	}
	for _, bt := range []*v1alpha1.BackgroundTask{unknown, invalid} {
		h.waitRow(string(bt.UID), lifecycle.Failed)
	}
	h.settle(h.op, "unknown") // a retry loop would show up as more history
	h.settle(h.op, "invalid")
	require.Equal(t, []string{"->PENDING@0", "PENDING>FAILED@1"}, h.history(string(unknown.UID)))
	require.Equal(t, []string{"->PENDING@0", "PENDING>FAILED@1"}, h.history(string(invalid.UID)))
	require.Eventually(t, func() bool {
		for _, e := range h.events(string(unknown.UID)) {
			if e == "Warning/"+lifecycle.ReasonUnknownTaskType {
				return true
			}
		}
		return false
	}, waitTimeout, 50*time.Millisecond)
}

func TestDeleteStopsRunAndKeepsHistory(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("doomed", "steps", `{"steps":1000,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitPhase("doomed", v1alpha1.PhaseRunning)
	require.NoError(t, h.c.Delete(h.ctx, bt))
	err := h.c.Get(h.ctx, client.ObjectKeyFromObject(bt), &v1alpha1.BackgroundTask{})
	require.True(t, apierrors.IsNotFound(err), "no finalizer holds the object: %v", err)

	deleted := h.waitDeleted(uid)
	require.Equal(t, lifecycle.Stopped, deleted.Status, "the run was stopped before the row was closed")
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>STOPPED@1"}, h.history(uid))
	h.requireNotRunning(uid)
}

func TestConcurrencyLimit(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{maxConcurrent: 10})
	const n = 200
	for i := range n {
		h.create(fmt.Sprintf("t%03d", i), "steps", `{"steps":3,"interval":"5ms"}`)
	}
	require.Eventually(t, func() bool {
		var list v1alpha1.BackgroundTaskList
		if err := h.c.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil {
			return false
		}
		finished := 0
		for _, bt := range list.Items {
			if bt.Status.Phase == v1alpha1.PhaseFinished {
				finished++
			}
		}
		return finished == n
	}, 3*waitTimeout, 100*time.Millisecond, "all %d tasks finish", n)
	require.LessOrEqual(t, h.probes.maxRunning.Load(), int64(10), "never more than --max-concurrent-tasks running")
	require.Greater(t, h.probes.maxRunning.Load(), int64(1), "tasks did run concurrently")
	require.Eventually(t, func() bool { return h.countRows("FINISHED") == n }, waitTimeout, 50*time.Millisecond)
}

// requireMetric checks that the operator exported metric name with at least min observations
// (counter sum or histogram sample count over all label sets).
func requireMetric(t *testing.T, p *operatorProcess, name string, min float64) {
	t.Helper()
	families, err := p.metrics.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		total := 0.0
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount()) + m.GetGauge().GetValue()
		}
		require.GreaterOrEqual(t, total, min, name)
		return
	}
	t.Fatalf("metric %s not exported", name)
}
