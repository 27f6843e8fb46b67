package controllers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	const (
		running = v1alpha1.DesiredRunning
		paused  = v1alpha1.DesiredPaused
		stopped = v1alpha1.DesiredStopped
	)
	obs := func(s store.Status, attempt int, mods ...func(*observedTask)) observedTask {
		o := observedTask{Status: s, Attempt: attempt, At: now}
		for _, m := range mods {
			m(&o)
		}
		return o
	}
	active := func(o *observedTask) { o.RunnerActive, o.Handed = true, true }
	handed := func(o *observedTask) { o.Handed = true }
	checkpoint := func(o *observedTask) { o.HasCheckpoint = true }
	reason := func(r string) func(*observedTask) { return func(o *observedTask) { o.Reason = r } }
	at := func(d time.Duration) func(*observedTask) { return func(o *observedTask) { o.At = now.Add(d) } }

	tests := []struct {
		name       string
		desired    v1alpha1.DesiredState
		restart    bool
		maxRetries int
		observed   observedTask
		want       action
		attempt    int
		resume     bool
		to         store.Status // for actRecord
		observe    bool
		requeue    bool
	}{
		// New and pending tasks.
		{name: "new task desired Running starts attempt 1", desired: running, observed: obs(store.StatusPending, 0), want: actStart, attempt: 1},
		{name: "new task desired Paused stays pending", desired: paused, observed: obs(store.StatusPending, 0), want: actNone},
		{name: "new task desired Stopped is recorded Stopped", desired: stopped, observed: obs(store.StatusPending, 0), want: actRecord, to: store.StatusStopped},
		{name: "queued in runner, desired Running: wait for a slot", desired: running, observed: obs(store.StatusPending, 1, active), want: actNone},
		{name: "queued in runner, desired Paused: pause", desired: paused, observed: obs(store.StatusPending, 1, active), want: actPause},
		{name: "queued in runner, desired Stopped: stop", desired: stopped, observed: obs(store.StatusPending, 1, active), want: actStop},
		{name: "handed but not yet reported: settle", desired: running, observed: obs(store.StatusPending, 1, handed), want: actNone, requeue: true},
		{name: "retry within backoff waits", desired: running, observed: obs(store.StatusPending, 2, reason(ReasonRetryScheduled), at(-500*time.Millisecond)), want: actNone, requeue: true},
		{name: "retry after backoff starts the attempt", desired: running, observed: obs(store.StatusPending, 2, reason(ReasonRetryScheduled), at(-2*time.Second)), want: actStart, attempt: 2},
		{name: "adopted pending with checkpoint resumes", desired: running, observed: obs(store.StatusPending, 3, checkpoint), want: actStart, attempt: 3, resume: true},

		// Running and paused.
		{name: "running as desired", desired: running, observed: obs(store.StatusRunning, 1, active), want: actNone},
		{name: "running, desired Paused: pause", desired: paused, observed: obs(store.StatusRunning, 1, active), want: actPause},
		{name: "running, desired Stopped: stop", desired: stopped, observed: obs(store.StatusRunning, 1, active), want: actStop},
		{name: "paused, desired Running: resume", desired: running, observed: obs(store.StatusPaused, 1, active), want: actResume},
		{name: "paused, desired Stopped: stop", desired: stopped, observed: obs(store.StatusPaused, 1, active), want: actStop},
		{name: "running but run settling", desired: running, observed: obs(store.StatusRunning, 1, handed), want: actNone, requeue: true},
		{name: "adopted RUNNING resumes from checkpoint", desired: running, observed: obs(store.StatusRunning, 2, checkpoint), want: actStart, attempt: 2, resume: true},
		{name: "adopted RUNNING without checkpoint restarts the attempt", desired: running, observed: obs(store.StatusRunning, 2), want: actStart, attempt: 2},
		{name: "adopted RUNNING desired Paused is recorded Paused", desired: paused, observed: obs(store.StatusRunning, 1, checkpoint), want: actRecord, to: store.StatusPaused},
		{name: "adopted PAUSED stays parked", desired: paused, observed: obs(store.StatusPaused, 1, checkpoint), want: actNone},
		{name: "adopted PAUSED set Running resumes from checkpoint", desired: running, observed: obs(store.StatusPaused, 1, checkpoint), want: actStart, attempt: 1, resume: true},
		{name: "adopted PAUSED set Stopped is recorded Stopped", desired: stopped, observed: obs(store.StatusPaused, 1), want: actRecord, to: store.StatusStopped},

		// Terminal.
		{name: "finished stays finished (GitOps re-apply)", desired: running, observed: obs(store.StatusFinished, 1), want: actNone},
		{name: "failed with retries left schedules a retry", desired: running, maxRetries: 2, observed: obs(store.StatusFailed, 1, reason("Error")), want: actRecord, to: store.StatusPending, requeue: true},
		{name: "failed with no retries left stays failed", desired: running, maxRetries: 1, observed: obs(store.StatusFailed, 2, reason("Error")), want: actNone},
		{name: "unknown type is never retried", desired: running, maxRetries: 5, observed: obs(store.StatusFailed, 1, reason(v1alpha1.ReasonUnknownTaskType)), want: actNone},
		{name: "invalid params are never retried", desired: running, maxRetries: 5, observed: obs(store.StatusFailed, 1, reason(v1alpha1.ReasonInvalidParams)), want: actNone},
		{name: "failed but desired Paused: no retry", desired: paused, maxRetries: 5, observed: obs(store.StatusFailed, 1, reason("Error")), want: actNone},
		{name: "stopped set Running starts a new attempt", desired: running, observed: obs(store.StatusStopped, 1), want: actStart, attempt: 2},
		{name: "stopped stays stopped", desired: stopped, observed: obs(store.StatusStopped, 1), want: actNone},

		// Restarts.
		{name: "restart of a finished task", desired: running, restart: true, observed: obs(store.StatusFinished, 1), want: actStart, attempt: 2, observe: true},
		{name: "restart of a running task stops it first", desired: running, restart: true, observed: obs(store.StatusRunning, 1, active), want: actStop, requeue: true},
		{name: "restart after the stop starts a fresh attempt", desired: running, restart: true, observed: obs(store.StatusStopped, 1, handed), want: actStart, attempt: 2, observe: true},
		{name: "restart of a paused run desired Paused stops it first", desired: paused, restart: true, observed: obs(store.StatusPaused, 1, active), want: actStop, requeue: true},
		{name: "restart while desired Paused queues a fresh attempt", desired: paused, restart: true, observed: obs(store.StatusStopped, 1), want: actRecord, to: store.StatusPending, observe: true},
		{name: "restart while desired Stopped is only observed", desired: stopped, restart: true, observed: obs(store.StatusFailed, 1), want: actNone, observe: true},
		{name: "restart waits for a settling run", desired: running, restart: true, observed: obs(store.StatusRunning, 1, handed), want: actNone, requeue: true},

		// Fencing.
		{name: "fenced with an active run stops it", desired: running, observed: obs(store.StatusRunning, 1, active, func(o *observedTask) { o.Fenced = true }), want: actStop},
		{name: "fenced without a run does nothing", desired: running, observed: obs(store.StatusRunning, 1, func(o *observedTask) { o.Fenced = true }), want: actNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := decisionInput{Desired: tc.desired, MaxRetries: tc.maxRetries, Observed: tc.observed, Now: now}
			if tc.restart {
				in.RestartGeneration = 1
			}
			d := decide(in)
			require.Equal(t, tc.want, d.Action, d.Why)
			require.Equal(t, tc.attempt, d.Attempt, "attempt")
			require.Equal(t, tc.resume, d.Resume, "resume")
			require.Equal(t, tc.observe, d.ObserveRestart, "observe restart")
			require.Equal(t, tc.requeue, d.RequeueAfter > 0, "requeue")
			if tc.want == actRecord {
				require.NotNil(t, d.Change)
				require.Equal(t, tc.to, d.Change.To)
				require.NotEmpty(t, d.Change.Reason)
			}
		})
	}
}

func TestRetryBackoff(t *testing.T) {
	require.Equal(t, time.Second, retryBackoff(1))
	require.Equal(t, 2*time.Second, retryBackoff(2))
	require.Equal(t, 4*time.Second, retryBackoff(3))
	require.Equal(t, 256*time.Second, retryBackoff(9))
	require.Equal(t, 5*time.Minute, retryBackoff(10))
	require.Equal(t, 5*time.Minute, retryBackoff(1000))
	require.Equal(t, time.Second, retryBackoff(0))
}

func TestRetryScheduledAttemptNumbers(t *testing.T) {
	d := decide(decisionInput{Desired: v1alpha1.DesiredRunning, MaxRetries: 3,
		Observed: observedTask{Status: store.StatusFailed, Attempt: 2, Reason: "Error"}})
	require.Equal(t, actRecord, d.Action)
	require.Equal(t, 3, d.Change.Attempt)
	require.True(t, d.Change.ClearCheckpoint, "a retry starts from scratch")
	require.Equal(t, 2*time.Second, d.RequeueAfter)
	require.Contains(t, d.Change.Message, "attempt 3 of 4")
}
