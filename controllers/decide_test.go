package controllers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// TestDecide is the lifecycle policy as a table: the spec, the record (as PostgreSQL holds it
// plus what is queued) and what this process runs go in, an action comes out. Every action
// must also be a legal step of the lifecycle from that record.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	const (
		running = v1alpha1.DesiredRunning
		paused  = v1alpha1.DesiredPaused
		stopped = v1alpha1.DesiredStopped
	)
	type task struct {
		rec                        lifecycle.Record
		active, handed, checkpoint bool
		lastActivity               time.Time
	}
	rec := func(s lifecycle.Status, attempt int, mods ...func(*task)) task {
		tk := task{rec: lifecycle.Record{Status: s, Attempt: attempt, Seq: 5, RestartGeneration: 1}}
		if s.Terminal() {
			tk.rec.EndTime = now.Add(-time.Minute)
		}
		for _, m := range mods {
			m(&tk)
		}
		return tk
	}
	active := func(tk *task) { tk.active, tk.handed = true, true }
	handed := func(tk *task) { tk.handed = true }
	checkpoint := func(tk *task) { tk.checkpoint = true }
	reason := func(r string) func(*task) { return func(tk *task) { tk.rec.Reason = r } }
	retries := func(n int) func(*task) { return func(tk *task) { tk.rec.Retries = n } }
	since := func(d time.Duration) func(*task) { return func(tk *task) { tk.rec.TransitionedAt = now.Add(d) } }
	idle := func(d time.Duration) func(*task) { return func(tk *task) { tk.lastActivity = now.Add(-d) } }
	// begun: the attempt ran already (its start time is recorded): it is no new start.
	begun := func(tk *task) { tk.rec.StartTime = now.Add(-time.Hour) }
	retryAt := func(d time.Duration) func(*task) {
		return func(tk *task) { tk.rec.Reason, tk.rec.RetryAt = lifecycle.ReasonRetryScheduled, now.Add(d) }
	}

	tests := []struct {
		name                       string
		desired                    v1alpha1.DesiredState
		restart                    bool // spec.restartGeneration is ahead of the record's
		maxRetries                 int
		task                       task
		pauseTimeout, stallTimeout time.Duration
		startAfter, resumeAt       time.Duration // from now (0: unset)
		want                       action
		attempt                    int
		resume                     bool
		to                         lifecycle.Status // for actRecord
		requeue                    bool
	}{
		// New and pending tasks.
		{name: "new task desired Running starts attempt 1", desired: running, task: rec(lifecycle.Pending, 0), want: actStart, attempt: 1},
		{name: "new task desired Paused stays pending", desired: paused, task: rec(lifecycle.Pending, 0), want: actNone},
		{name: "new task desired Stopped is recorded Stopped", desired: stopped, task: rec(lifecycle.Pending, 0), want: actRecord, to: lifecycle.Stopped},
		{name: "queued in runner, desired Running: wait for a slot", desired: running, task: rec(lifecycle.Pending, 1, active), want: actNone},
		{name: "queued in runner, desired Paused: pause", desired: paused, task: rec(lifecycle.Pending, 1, active), want: actPause},
		{name: "queued in runner, desired Stopped: stop", desired: stopped, task: rec(lifecycle.Pending, 1, active), want: actStop},
		{name: "handed but not yet reported: settle", desired: running, task: rec(lifecycle.Pending, 1, handed), want: actNone, requeue: true},
		{name: "retry before retry_at waits", desired: running, task: rec(lifecycle.Pending, 2, retryAt(500*time.Millisecond)), want: actNone, requeue: true},
		{name: "retry at retry_at starts the attempt", desired: running, task: rec(lifecycle.Pending, 2, retryAt(-time.Millisecond)), want: actStart, attempt: 2},
		{name: "adopted pending with checkpoint resumes", desired: running, task: rec(lifecycle.Pending, 3, checkpoint), want: actStart, attempt: 3, resume: true},

		// Running and paused.
		{name: "running as desired", desired: running, task: rec(lifecycle.Running, 1, active), want: actNone},
		{name: "running, desired Paused: pause", desired: paused, task: rec(lifecycle.Running, 1, active), want: actPause},
		{name: "running, desired Stopped: stop", desired: stopped, task: rec(lifecycle.Running, 1, active), want: actStop},
		{name: "paused, desired Running: resume", desired: running, task: rec(lifecycle.Paused, 1, active), want: actResume},
		{name: "paused, desired Stopped: stop", desired: stopped, task: rec(lifecycle.Paused, 1, active), want: actStop},
		{name: "running but run settling", desired: running, task: rec(lifecycle.Running, 1, handed), want: actNone, requeue: true},
		{name: "adopted RUNNING resumes from checkpoint", desired: running, task: rec(lifecycle.Running, 2, checkpoint), want: actStart, attempt: 2, resume: true},
		{name: "adopted RUNNING without checkpoint reruns the attempt", desired: running, task: rec(lifecycle.Running, 2), want: actStart, attempt: 2},
		{name: "adopted RUNNING desired Paused is recorded Paused", desired: paused, task: rec(lifecycle.Running, 1, checkpoint), want: actRecord, to: lifecycle.Paused},
		{name: "adopted PAUSED stays parked", desired: paused, task: rec(lifecycle.Paused, 1, checkpoint), want: actNone},
		{name: "adopted PAUSED set Running resumes from checkpoint", desired: running, task: rec(lifecycle.Paused, 1, checkpoint), want: actStart, attempt: 1, resume: true},
		{name: "adopted PAUSED set Stopped is recorded Stopped", desired: stopped, task: rec(lifecycle.Paused, 1), want: actRecord, to: lifecycle.Stopped},

		// Terminal.
		{name: "finished stays finished (GitOps re-apply)", desired: running, task: rec(lifecycle.Finished, 1), want: actNone},
		{name: "failed with retries left schedules a retry", desired: running, maxRetries: 2, task: rec(lifecycle.Failed, 1, reason("Error")), want: actRecord, to: lifecycle.Pending},
		{name: "failed with no retries left stays failed", desired: running, maxRetries: 1, task: rec(lifecycle.Failed, 2, reason("Error"), retries(1)), want: actNone},
		{name: "retries count retries, not restarts", desired: running, maxRetries: 1, task: rec(lifecycle.Failed, 7, reason("Error")), want: actRecord, to: lifecycle.Pending},
		{name: "unknown type is never retried", desired: running, maxRetries: 5, task: rec(lifecycle.Failed, 1, reason(lifecycle.ReasonUnknownTaskType)), want: actNone},
		{name: "invalid params are never retried", desired: running, maxRetries: 5, task: rec(lifecycle.Failed, 1, reason(lifecycle.ReasonInvalidParams)), want: actNone},
		{name: "a result too large is never retried", desired: running, maxRetries: 5, task: rec(lifecycle.Failed, 1, reason(lifecycle.ReasonResultTooLarge)), want: actNone},
		{name: "a rejected record is never retried", desired: running, maxRetries: 5, task: rec(lifecycle.Failed, 1, reason(lifecycle.ReasonRecordRejected)), want: actNone},
		{name: "failed but desired Paused: no retry", desired: paused, maxRetries: 5, task: rec(lifecycle.Failed, 1, reason("Error")), want: actNone},
		{name: "stopped set Running starts a new attempt", desired: running, task: rec(lifecycle.Stopped, 1), want: actStart, attempt: 2},
		{name: "stopped stays stopped", desired: stopped, task: rec(lifecycle.Stopped, 1), want: actNone},

		// Pause timeout and stalls.
		{name: "paused within its pause timeout waits", desired: paused, pauseTimeout: time.Hour, task: rec(lifecycle.Paused, 1, active, since(-time.Minute)), want: actNone, requeue: true},
		{name: "paused past its pause timeout is stopped", desired: paused, pauseTimeout: time.Hour, task: rec(lifecycle.Paused, 1, active, since(-2*time.Hour)), want: actStop},
		{name: "adopted paused past its pause timeout is recorded Stopped", desired: paused, pauseTimeout: time.Hour, task: rec(lifecycle.Paused, 1, since(-2*time.Hour)), want: actRecord, to: lifecycle.Stopped},
		{name: "a running task alive within its stall timeout", desired: running, stallTimeout: time.Minute, task: rec(lifecycle.Running, 1, active, idle(10*time.Second)), want: actNone, requeue: true},
		{name: "a running task silent past its stall timeout is recorded stalled", desired: running, stallTimeout: time.Minute, task: rec(lifecycle.Running, 1, active, idle(2*time.Minute)), want: actRecord, to: lifecycle.Running, requeue: true},
		{name: "a stalled task that is alive again is recorded so", desired: running, stallTimeout: time.Minute, task: rec(lifecycle.Running, 1, active, idle(time.Second), reason(lifecycle.ReasonStalled)), want: actRecord, to: lifecycle.Running, requeue: true},
		{name: "a stalled task still silent stays stalled", desired: running, stallTimeout: time.Minute, task: rec(lifecycle.Running, 1, active, idle(5*time.Minute), reason(lifecycle.ReasonStalled)), want: actNone, requeue: true},

		// Restarts: the record's restart generation is behind the spec's.
		{name: "restart of a finished task", desired: running, restart: true, task: rec(lifecycle.Finished, 1), want: actStart, attempt: 2},
		{name: "restart of a running task stops it first", desired: running, restart: true, task: rec(lifecycle.Running, 1, active), want: actStop, requeue: true},
		{name: "restart after the stop starts a fresh attempt", desired: running, restart: true, task: rec(lifecycle.Stopped, 1, handed), want: actStart, attempt: 2},
		{name: "restart of an adopted RUNNING task ends its attempt first", desired: running, restart: true, task: rec(lifecycle.Running, 1, checkpoint), want: actRecord, to: lifecycle.Stopped},
		{name: "restart of an adopted PAUSED task desired Paused ends its attempt first", desired: paused, restart: true, task: rec(lifecycle.Paused, 1), want: actRecord, to: lifecycle.Stopped},
		{name: "restart of a pending task desired Running starts a fresh attempt", desired: running, restart: true, task: rec(lifecycle.Pending, 1), want: actStart, attempt: 2},
		{name: "restart of a paused run desired Paused stops it first", desired: paused, restart: true, task: rec(lifecycle.Paused, 1, active), want: actStop, requeue: true},
		{name: "restart while desired Paused queues a fresh attempt", desired: paused, restart: true, task: rec(lifecycle.Stopped, 1), want: actRecord, to: lifecycle.Pending},
		{name: "restart while desired Stopped clears the outcome", desired: stopped, restart: true, task: rec(lifecycle.Failed, 1), want: actRecord, to: lifecycle.Stopped},
		{name: "restart while desired Stopped of a pending task", desired: stopped, restart: true, task: rec(lifecycle.Pending, 1), want: actRecord, to: lifecycle.Stopped},
		{name: "restart waits for a settling run", desired: running, restart: true, task: rec(lifecycle.Running, 1, handed), want: actNone, requeue: true},

		// spec.startAfter holds back every new attempt, never a run that started.
		{name: "new task waits for startAfter", desired: running, startAfter: time.Hour, task: rec(lifecycle.Pending, 0), want: actNone, requeue: true},
		{name: "new task starts once startAfter passed", desired: running, startAfter: -time.Second, task: rec(lifecycle.Pending, 0), want: actStart, attempt: 1},
		{name: "new task desired Paused before startAfter stays pending", desired: paused, startAfter: time.Hour, task: rec(lifecycle.Pending, 0), want: actNone},
		{name: "new task desired Stopped before startAfter is recorded Stopped", desired: stopped, startAfter: time.Hour, task: rec(lifecycle.Pending, 0), want: actRecord, to: lifecycle.Stopped},
		{name: "restart before startAfter waits", desired: running, restart: true, startAfter: time.Hour, task: rec(lifecycle.Finished, 1), want: actNone, requeue: true},
		{name: "stopped set Running before startAfter waits", desired: running, startAfter: time.Hour, task: rec(lifecycle.Stopped, 1), want: actNone, requeue: true},
		{name: "adopted RUNNING resumes although startAfter moved ahead", desired: running, startAfter: time.Hour, task: rec(lifecycle.Running, 2, checkpoint), want: actStart, attempt: 2, resume: true},
		{name: "a run in the runner is not held back by startAfter", desired: running, startAfter: time.Hour, task: rec(lifecycle.Running, 1, active), want: actNone},
		{name: "an adopted run waiting Pending for a slot is not held back by startAfter", desired: running, startAfter: time.Hour,
			task: rec(lifecycle.Pending, 2, begun, checkpoint), want: actStart, attempt: 2, resume: true},
		{name: "a retry waiting Pending before startAfter waits", desired: running, startAfter: time.Hour,
			task: rec(lifecycle.Pending, 2, reason(lifecycle.ReasonRetryScheduled)), want: actNone, requeue: true},

		// spec.resumeAt drives a Paused task as Running once it passed.
		{name: "paused before resumeAt stays paused, looks again then", desired: paused, resumeAt: time.Hour, task: rec(lifecycle.Paused, 1, active), want: actNone, requeue: true},
		{name: "paused run at resumeAt resumes", desired: paused, resumeAt: -time.Second, task: rec(lifecycle.Paused, 1, active), want: actResume},
		{name: "adopted PAUSED at resumeAt resumes from checkpoint", desired: paused, resumeAt: -time.Second, task: rec(lifecycle.Paused, 1, checkpoint), want: actStart, attempt: 1, resume: true},
		{name: "created Paused with resumeAt starts then", desired: paused, resumeAt: -time.Second, task: rec(lifecycle.Pending, 0), want: actStart, attempt: 1},
		{name: "resumeAt and a later startAfter: the later wins", desired: paused, resumeAt: -time.Second, startAfter: time.Hour, task: rec(lifecycle.Pending, 0), want: actNone, requeue: true},
		{name: "resumeAt does not rerun a task a pause timeout stopped", desired: paused, resumeAt: -time.Second, task: rec(lifecycle.Stopped, 1, reason(lifecycle.ReasonPauseTimeout)), want: actNone},
		{name: "resumeAt means nothing with Stopped", desired: stopped, resumeAt: -time.Second, task: rec(lifecycle.Paused, 1, active), want: actStop},
		{name: "resumeAt before the pause timeout wins when both passed", desired: paused, pauseTimeout: time.Hour, resumeAt: -90 * time.Minute,
			task: rec(lifecycle.Paused, 1, checkpoint, since(-2*time.Hour)), want: actStart, attempt: 1, resume: true},
		{name: "a pause timeout before resumeAt wins", desired: paused, pauseTimeout: time.Hour, resumeAt: -time.Second,
			task: rec(lifecycle.Paused, 1, active, since(-2*time.Hour)), want: actStop},
	}
	decidedBy := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := decisionInput{Desired: tc.desired, MaxRetries: tc.maxRetries, Record: tc.task.rec, Now: now,
				HasCheckpoint: tc.task.checkpoint, Handed: tc.task.handed, RunnerActive: tc.task.active,
				RestartGeneration: tc.task.rec.RestartGeneration, Backoff: backoffOf(v1alpha1.BackgroundTaskSpec{}),
				PauseTimeout: tc.pauseTimeout, StallTimeout: tc.stallTimeout, LastActivity: tc.task.lastActivity}
			if tc.startAfter != 0 {
				in.StartAfter = now.Add(tc.startAfter)
			}
			if tc.resumeAt != 0 {
				in.ResumeAt = now.Add(tc.resumeAt)
			}
			if tc.restart {
				in.RestartGeneration++
			}
			d := decide(in)
			decidedBy[d.Policy] = true
			require.Equal(t, tc.want, d.Action, d.Why)
			require.Equal(t, tc.attempt, d.Attempt, "attempt")
			require.Equal(t, tc.resume, d.Resume, "resume")
			require.Equal(t, tc.requeue, d.RequeueAfter > 0, "requeue")
			switch d.Action {
			case actRecord:
				require.NotNil(t, d.Event)
				require.Equal(t, tc.to, d.Event.To)
				ev := *d.Event
				ev.At = now
				tr, err := lifecycle.Next(tc.task.rec, ev)
				require.NoError(t, err, "a recorded decision is a legal step")
				if ev.RestartGeneration != 0 {
					require.Equal(t, in.RestartGeneration, tr.RestartGeneration, "a transition that honours a restart honours the spec's")
				}
			case actStart:
				// The runner reports the run entering Running (or Pending for a slot).
				_, err := lifecycle.Next(tc.task.rec, lifecycle.Event{To: lifecycle.Running, Attempt: d.Attempt, Reason: "Started", At: now})
				require.NoError(t, err, "a start is a legal step")
				require.Equal(t, in.RestartGeneration, d.RestartGeneration, "the started attempt honours the spec's restart generation")
			case actNone, actPause, actResume, actStop:
			}
		})
	}
	for _, p := range policies() {
		require.True(t, decidedBy[p.name], "no case exercises policy %s", p.name)
	}
	require.Len(t, decidedBy, len(policies()), "every decision names the policy that made it")
}

func TestBackoff(t *testing.T) {
	def := backoffOf(v1alpha1.BackgroundTaskSpec{})
	for retries, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 2: 4 * time.Second, 8: 256 * time.Second,
		9: 5 * time.Minute, 1000: 5 * time.Minute} {
		require.Equal(t, want, def.wait(retries, 1, 1), "retry after %d retries", retries)
	}
	custom := backoffOf(v1alpha1.BackgroundTaskSpec{Backoff: &v1alpha1.Backoff{
		Initial: &metav1.Duration{Duration: 10 * time.Second}, Max: &metav1.Duration{Duration: time.Minute}, JitterPercent: 20}})
	for attempt := 1; attempt < 50; attempt++ {
		d := custom.wait(0, 42, attempt)
		require.GreaterOrEqual(t, d, 8*time.Second, "within -20%%")
		require.Less(t, d, 12*time.Second, "within +20%%")
		require.Equal(t, d, custom.wait(0, 42, attempt), "the same for a given task and attempt, in every operator")
	}
	require.NotEqual(t, custom.wait(0, 42, 1), custom.wait(0, 43, 1), "tasks that failed together do not retry together")
	require.LessOrEqual(t, custom.wait(10, 42, 1), 72*time.Second, "capped at max (plus jitter)")
}

// TestRetryIsScheduledFromTheRow: when the retry is due depends on the recorded failure time
// and retry count only, so every operator, before or after a restart, schedules the same.
func TestRetryIsScheduledFromTheRow(t *testing.T) {
	failedAt := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	d := decide(decisionInput{Desired: v1alpha1.DesiredRunning, MaxRetries: 3, Now: failedAt.Add(time.Second),
		Backoff: backoffOf(v1alpha1.BackgroundTaskSpec{}),
		Record:  lifecycle.Record{Status: lifecycle.Failed, Attempt: 2, Reason: "Error", Retries: 1, Seq: 4, EndTime: failedAt}})
	require.Equal(t, actRecord, d.Action)
	require.Equal(t, 3, d.Event.Attempt)
	require.Equal(t, failedAt.Add(2*time.Second), d.Event.RetryAt)
	require.Equal(t, time.Second, d.RequeueAfter)
	require.Contains(t, d.Event.Message, "retry 2 of 3 (attempt 3)")
}
