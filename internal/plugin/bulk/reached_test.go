package bulk

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

func task(state v1alpha1.DesiredState, phase v1alpha1.Phase, attempt int32, gen, observedGen int64) *v1alpha1.BackgroundTask {
	return &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "default", Generation: gen},
		Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "countdown", State: state},
		Status:     v1alpha1.BackgroundTaskStatus{Phase: phase, Attempt: attempt, ObservedGeneration: observedGen},
	}
}

func TestChange(t *testing.T) {
	running := task(v1alpha1.DesiredRunning, v1alpha1.PhaseRunning, 1, 1, 1)
	body, what := Pause.change(running)
	require.JSONEq(t, `{"spec":{"state":"Paused"}}`, string(body))
	require.Equal(t, "spec.state Running → Paused", what)

	body, what = Resume.change(running)
	require.Nil(t, body, "resume of a task whose spec says Running writes nothing")
	require.Equal(t, "spec.state is already Running", what)

	defaulted := task("", v1alpha1.PhaseRunning, 1, 1, 1)
	body, _ = Resume.change(defaulted)
	require.Nil(t, body, "an unset spec.state means Running")

	body, _ = Stop.change(running)
	require.JSONEq(t, `{"spec":{"state":"Stopped"}}`, string(body))

	running.Spec.RestartGeneration = 4
	body, what = Restart.change(running)
	require.JSONEq(t, `{"spec":{"restartGeneration":5}}`, string(body), "restart always bumps, from the object read")
	require.Equal(t, "restartGeneration 4 → 5", what)

	body, what = RetryFailed.change(running)
	require.Nil(t, body, "a task without items has nothing to retry")
	require.Equal(t, "has no spec.items: nothing to retry", what)
	failed := task(v1alpha1.DesiredRunning, v1alpha1.PhaseFailed, 2, 1, 1)
	failed.Spec.Items, failed.Spec.RestartGeneration = &v1alpha1.ItemsSpec{}, 2
	failed.Status.Items = &v1alpha1.ItemsStatus{Total: 10, Succeeded: 7, Failed: 3}
	body, what = RetryFailed.change(failed)
	require.JSONEq(t, `{"spec":{"restartGeneration":3,"items":{"retryFailedGeneration":3}}}`, string(body))
	require.Equal(t, "restartGeneration 2 → 3, keeping the items that succeeded", what)
	failed.Status.Items = &v1alpha1.ItemsStatus{Total: 10, Succeeded: 10}
	body, what = RetryFailed.change(failed)
	require.Nil(t, body)
	require.Equal(t, "no item failed", what)

	resumed := task(v1alpha1.DesiredPaused, v1alpha1.PhaseRunning, 1, 1, 1)
	resumed.Spec.ResumeAt = &metav1.Time{Time: time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)}
	body, what = Pause.change(resumed)
	require.JSONEq(t, `{"spec":{"state":"Paused","resumeAt":null}}`, string(body),
		"a Paused task whose resumeAt passed runs: pause drops the resumeAt")
	require.Equal(t, "spec.resumeAt 2026-12-05T14:00:00Z removed", what)

	require.JSONEq(t, `{"metadata":{"resourceVersion":"42"},"spec":{"state":"Paused"}}`,
		string(withResourceVersion([]byte(`{"spec":{"state":"Paused"}}`), "42")))
}

func TestReached(t *testing.T) {
	const gen = 2
	at := func(b before) before { b.Generation = gen; return b }
	cases := []struct {
		name   string
		verb   Verb
		before before
		now    *v1alpha1.BackgroundTask
		done   bool
		note   string
	}{
		{"status older than the patch does not count", Pause, at(before{Phase: v1alpha1.PhaseRunning}),
			task(v1alpha1.DesiredPaused, v1alpha1.PhasePaused, 1, gen, gen-1), false, ""},
		{"pause reaches Paused", Pause, at(before{Phase: v1alpha1.PhaseRunning}),
			task(v1alpha1.DesiredPaused, v1alpha1.PhasePaused, 1, gen, gen), true, ""},
		{"pause: still running toward the pause point", Pause, at(before{Phase: v1alpha1.PhaseRunning}),
			task(v1alpha1.DesiredPaused, v1alpha1.PhaseRunning, 1, gen, gen), false, ""},
		{"pause of a task that never started", Pause, at(before{Phase: v1alpha1.PhasePending}),
			task(v1alpha1.DesiredPaused, v1alpha1.PhasePending, 0, gen, gen), true, "Pending: not started, and it will not start while Paused"},
		{"pause of a finished task", Pause, at(before{Phase: v1alpha1.PhaseFinished}),
			task(v1alpha1.DesiredPaused, v1alpha1.PhaseFinished, 1, gen, gen), true, "Finished: nothing to pause"},
		{"resume reaches Running", Resume, at(before{Phase: v1alpha1.PhasePaused, Attempt: 1}),
			task(v1alpha1.DesiredRunning, v1alpha1.PhaseRunning, 1, gen, gen), true, ""},
		{"resume: finished meanwhile counts, and says so", Resume, at(before{Phase: v1alpha1.PhasePaused, Attempt: 1}),
			task(v1alpha1.DesiredRunning, v1alpha1.PhaseFinished, 1, gen, gen), true, "Finished meanwhile (attempt 1)"},
		{"resume of a stopped task waits for the new attempt", Resume, at(before{Phase: v1alpha1.PhaseStopped, Attempt: 1}),
			task(v1alpha1.DesiredRunning, v1alpha1.PhaseStopped, 1, gen, gen), false, ""},
		{"resume of a stopped task: new attempt running", Resume, at(before{Phase: v1alpha1.PhaseStopped, Attempt: 1}),
			task(v1alpha1.DesiredRunning, v1alpha1.PhaseRunning, 2, gen, gen), true, ""},
		{"stop reaches Stopped", Stop, at(before{Phase: v1alpha1.PhaseRunning}),
			task(v1alpha1.DesiredStopped, v1alpha1.PhaseStopped, 1, gen, gen), true, ""},
		{"stop: failed first", Stop, at(before{Phase: v1alpha1.PhaseRunning}),
			task(v1alpha1.DesiredStopped, v1alpha1.PhaseFailed, 1, gen, gen), true, "Failed before it could be stopped"},
		{"stop: paused is not stopped", Stop, at(before{Phase: v1alpha1.PhasePaused}),
			task(v1alpha1.DesiredStopped, v1alpha1.PhasePaused, 1, gen, gen), false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			done, note := reached(c.verb, c.before, c.now)
			require.Equal(t, c.done, done)
			require.Equal(t, c.note, note)
		})
	}
}

func TestReachedRestart(t *testing.T) {
	b := before{Phase: v1alpha1.PhaseRunning, Attempt: 1, Generation: 3, RestartGeneration: 1}
	now := func(state v1alpha1.DesiredState, phase v1alpha1.Phase, attempt int32, observedRestart int64) *v1alpha1.BackgroundTask {
		t := task(state, phase, attempt, 3, 3)
		t.Spec.RestartGeneration = 1
		t.Status.ObservedRestartGeneration = observedRestart
		return t
	}
	done, _ := reached(Restart, b, now(v1alpha1.DesiredRunning, v1alpha1.PhaseRunning, 1, 0))
	require.False(t, done, "the old attempt still running is not the restart")
	done, _ = reached(Restart, b, now(v1alpha1.DesiredRunning, v1alpha1.PhaseStopped, 1, 0))
	require.False(t, done, "stopping the old run is half of a restart")
	done, note := reached(Restart, b, now(v1alpha1.DesiredRunning, v1alpha1.PhaseRunning, 2, 1))
	require.True(t, done)
	require.Equal(t, "attempt 2 Running", note)
	done, note = reached(Restart, b, now(v1alpha1.DesiredRunning, v1alpha1.PhaseFinished, 2, 1))
	require.True(t, done)
	require.Equal(t, "attempt 2 Finished meanwhile", note)
	done, note = reached(Restart, b, now(v1alpha1.DesiredPaused, v1alpha1.PhasePending, 2, 1))
	require.True(t, done)
	require.Equal(t, "attempt 2 Pending until spec.state is Running", note)
	done, _ = reached(Restart, b, now(v1alpha1.DesiredStopped, v1alpha1.PhaseStopped, 1, 1))
	require.True(t, done)
}

func TestPrintSummary(t *testing.T) {
	key := func(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	outcomes := []Outcome{
		{Key: key("b", "two"), Result: AlreadyThere, Detail: "spec.state is already Paused", Phase: v1alpha1.PhasePaused},
		{Key: key("a", "one"), Result: Changed, Detail: "spec.state Running → Paused", Phase: v1alpha1.PhasePaused},
		{Key: key("a", "zero"), Result: Failed, Detail: "not found", Err: errors.New("not found")},
	}
	var buf bytes.Buffer
	require.NoError(t, PrintSummary(&buf, Pause, outcomes, true, false))
	require.Equal(t, `NAMESPACE   NAME   RESULT          DETAIL
a           one    paused          spec.state Running → Paused
a           zero   failed          not found
b           two    already there   spec.state is already Paused
3 tasks: 1 paused, 1 already there, 1 failed
`, buf.String())

	buf.Reset()
	outcomes[1].Waited = ""
	require.NoError(t, PrintSummary(&buf, Pause, outcomes[:2], false, true))
	require.Equal(t, `NAME   RESULT          DETAIL                         NOW
one    paused          spec.state Running → Paused    Paused
two    already there   spec.state is already Paused   Paused
2 tasks: 1 paused, 1 already there, 0 failed
`, buf.String())
}
