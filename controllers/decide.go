package controllers

import (
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
)

// action is what the reconciler does to move actual state toward spec.
type action string

const (
	actNone   action = "None"
	actStart  action = "Start"  // hand an attempt to the runner
	actPause  action = "Pause"  // runner.PauseTask
	actResume action = "Resume" // runner.ResumeTask
	actStop   action = "Stop"   // runner.StopTask
	actRecord action = "Record" // record a transition the controller decides (no run involved)
)

// decisionInput is everything a decision is made from: the spec, the task's record (as
// PostgreSQL holds it plus the changes on their way there), and what this process runs.
// Nothing comes from the BackgroundTask's status: after a crash or a failover, the row and the
// spec alone rebuild every decision.
type decisionInput struct {
	// Desired is spec.state; decide drives a Paused task as Running once ResumeAt passed.
	Desired           v1alpha1.DesiredState
	RestartGeneration int64
	MaxRetries        int
	Record            lifecycle.Record
	// HasCheckpoint: a checkpoint of Record.Attempt was adopted from the row.
	HasCheckpoint bool
	// Handed: this process handed Record.Attempt to the runner.
	Handed bool
	// RunnerActive: the runner holds a non-terminal run of the task.
	RunnerActive bool
	// LastActivity is when the run here last showed a sign of life (zero: no run here).
	LastActivity time.Time
	// Backoff is the retry backoff (spec.backoff with its defaults); JitterSeed makes its
	// jitter the same for a given task in every operator.
	Backoff    backoff
	JitterSeed uint64
	// PauseTimeout and StallTimeout are spec.pauseTimeout and spec.stallTimeout (0: unset).
	PauseTimeout, StallTimeout time.Duration
	// StartAfter is spec.startAfter: no new attempt starts before it (zero: unset).
	StartAfter time.Time
	// ResumeAt is spec.resumeAt: a Paused task is driven as Running from then on (zero: unset).
	ResumeAt time.Time
	Now      time.Time
}

type decision struct {
	Action action
	// Attempt is the attempt to start (actStart).
	Attempt int
	// Resume starts from the adopted checkpoint instead of from scratch (actStart).
	Resume bool
	// RestartGeneration is the spec.restartGeneration the started attempt honours (actStart).
	RestartGeneration int64
	// Event is the transition to record (actRecord).
	Event *lifecycle.Event
	// StopReason and StopMessage explain a stop the controller decides (actStop), for example
	// a pause timeout; empty for a stop the user asked for.
	StopReason, StopMessage string
	// RequeueAfter asks for another look later (a retry backoff, a run settling).
	RequeueAfter time.Duration
	// Policy names the rule that decided (Policy constants); Why explains the decision in logs.
	Policy, Why string
}

// Policy names: each rule of the lifecycle policy, in the order they are tried (policies). A
// decision carries the name of the rule that made it, for logs and tests.
const (
	PolicyRestartStopsTheRun    = "RestartStopsTheRun"
	PolicyRestartWaitsForTheRun = "RestartWaitsForTheRun"
	PolicyRestartEndsTheAttempt = "RestartEndsTheAttempt"
	PolicyWaitForStartAfter     = "WaitForStartAfter"
	PolicyRestart               = "Restart"
	PolicyPauseTimeout          = "PauseTimeout"
	PolicyDriveTheRun           = "DriveTheRun"
	PolicyWaitForTheRunToSettle = "WaitForTheRunToSettle"
	PolicyStartPending          = "StartPending"
	PolicyResumeAdopted         = "ResumeAdopted"
	PolicyRetry                 = "Retry"
	PolicyRunAgainAfterStop     = "RunAgainAfterStop"
	PolicyFinal                 = "Final"
)

// policy is one rule: it decides (true) or passes the input to the next rule (false).
type policy struct {
	name   string
	decide func(in decisionInput) (decision, bool)
}

// policies is the lifecycle policy as an ordered list, cert-manager style: the first rule that
// decides wins, so the order is the precedence. A restart the spec asks for comes before
// everything; then the pause timeout; then a run this process holds is driven toward spec.state;
// a run on its way in or out is waited for; then what the record says with no run here.
func policies() []policy {
	return []policy{
		{PolicyRestartStopsTheRun, restartStopsTheRun},
		{PolicyRestartWaitsForTheRun, restartWaitsForTheRun},
		{PolicyRestartEndsTheAttempt, restartEndsTheAttempt},
		{PolicyWaitForStartAfter, waitForStartAfter},
		{PolicyRestart, restart},
		{PolicyPauseTimeout, pauseTimedOut},
		{PolicyDriveTheRun, driveTheRun},
		{PolicyWaitForTheRunToSettle, waitForTheRunToSettle},
		{PolicyStartPending, startPending},
		{PolicyResumeAdopted, resumeAdopted},
		{PolicyRetry, retry},
		{PolicyRunAgainAfterStop, runAgainAfterStop},
		{PolicyFinal, final},
	}
}

// decide is the lifecycle policy as a pure function of spec and record: no side effects and no
// clock of its own, so it is table-tested without a cluster.
func decide(in decisionInput) decision {
	if in.Desired != v1alpha1.DesiredPaused {
		in.ResumeAt = time.Time{} // it means nothing with Running or Stopped
	}
	waking := in.resumeAhead()
	in.Desired = in.desiredNow()
	d := decision{Action: actNone, Why: "unknown status " + string(in.Record.Status)}
	for _, p := range policies() {
		if pd, ok := p.decide(in); ok {
			d = pd
			d.Policy = p.name
			break
		}
	}
	if waking > 0 && (d.RequeueAfter <= 0 || waking < d.RequeueAfter) {
		d.RequeueAfter = waking // spec.resumeAt changes the answer then
	}
	return d
}

// desiredNow is the state to drive toward now (desiredAt).
func (in decisionInput) desiredNow() v1alpha1.DesiredState {
	return desiredAt(in.Desired, in.ResumeAt, in.Record.Status, in.Now)
}

// desiredAt is the state the controller drives a task toward at now: spec.state, except that a
// Paused task that is not over (Pending, Running or Paused) is driven as Running once
// spec.resumeAt has passed. A task a pause timeout stopped stays stopped: resumeAt resumes
// paused work, it does not start new work. The decision, the status and the row's
// desired_state all use it.
func desiredAt(state v1alpha1.DesiredState, resumeAt time.Time, status lifecycle.Status, now time.Time) v1alpha1.DesiredState {
	if state == v1alpha1.DesiredPaused && !resumeAt.IsZero() && !now.Before(resumeAt) && !status.Terminal() {
		return v1alpha1.DesiredRunning
	}
	return state
}

// resumeAhead is how long until spec.resumeAt resumes a Paused task (0: it does not).
func (in decisionInput) resumeAhead() time.Duration {
	if in.Desired != v1alpha1.DesiredPaused || in.ResumeAt.IsZero() || in.Record.Status.Terminal() {
		return 0
	}
	return max(in.ResumeAt.Sub(in.Now), 0)
}

// restartRequested: spec.restartGeneration is ahead of the generation the record honours.
func (in decisionInput) restartRequested() bool {
	return in.RestartGeneration > in.Record.RestartGeneration
}

// settling: a run this process handed to the runner is on its way (its first transition not
// yet reported) or out (its last one reported, the entry not yet gone).
func (in decisionInput) settling() bool {
	return in.Handed && !in.RunnerActive && !in.Record.Status.Terminal()
}

// restartStopsTheRun stops the current run first and starts the new attempt once it is over:
// waiting for the stop here would block a worker for up to the stop grace.
func restartStopsTheRun(in decisionInput) (decision, bool) {
	if !in.restartRequested() || !in.RunnerActive {
		return decision{}, false
	}
	return decision{Action: actStop, RequeueAfter: kit.SettleDelay, Why: "restart requested: stopping the current run first"}, true
}

func restartWaitsForTheRun(in decisionInput) (decision, bool) {
	if !in.restartRequested() || !in.settling() {
		return decision{}, false
	}
	return decision{Action: actNone, RequeueAfter: kit.SettleDelay, Why: "restart requested: waiting for the run to settle"}, true
}

// restartEndsTheAttempt: a task recorded as running but running nowhere (adopted) ends its
// attempt before the new one starts. The restart is honoured by the new attempt, so a crash in
// between loses nothing.
func restartEndsTheAttempt(in decisionInput) (decision, bool) {
	rec := in.Record
	if !in.restartRequested() || (rec.Status != lifecycle.Running && rec.Status != lifecycle.Paused) {
		return decision{}, false
	}
	return decision{Action: actRecord, Why: "restart requested: ending the adopted attempt first",
		Event: &lifecycle.Event{To: lifecycle.Stopped, Attempt: rec.Attempt, Reason: lifecycle.ReasonStopped,
			Message: fmt.Sprintf("stopped for a restart (restartGeneration %d)", in.RestartGeneration)}}, true
}

// waitForStartAfter holds back every start of a new attempt (a first start, a retry, a restart,
// a run again after a stop) until spec.startAfter. A run whose attempt already began (adopted,
// or resumed, and waiting Pending for a slot: its start time is recorded) is not held back:
// the time delays work, it never interrupts it.
func waitForStartAfter(in decisionInput) (decision, bool) {
	wait := in.StartAfter.Sub(in.Now)
	if in.StartAfter.IsZero() || wait <= 0 || in.Desired != v1alpha1.DesiredRunning || in.RunnerActive || in.settling() {
		return decision{}, false
	}
	rec := in.Record
	starts := (rec.Status == lifecycle.Pending && rec.StartTime.IsZero()) || rec.Status == lifecycle.Stopped ||
		(in.restartRequested() && (rec.Status.Terminal() || rec.Status == lifecycle.Pending))
	if !starts {
		return decision{}, false
	}
	return decision{Action: actNone, RequeueAfter: wait,
		Why: "waiting for spec.startAfter " + in.StartAfter.UTC().Format(time.RFC3339)}, true
}

// restart starts the new attempt as spec.state says: run it, queue it until spec.state is
// Running, or record that the outcome was cleared while Stopped.
func restart(in decisionInput) (decision, bool) {
	if !in.restartRequested() {
		return decision{}, false
	}
	rec := in.Record
	next, gen := rec.Attempt+1, in.RestartGeneration
	switch in.Desired {
	case v1alpha1.DesiredRunning:
		return decision{Action: actStart, Attempt: next, RestartGeneration: gen, Why: "restart requested"}, true
	case v1alpha1.DesiredPaused:
		return decision{Action: actRecord, Why: "restart requested while Paused",
			Event: &lifecycle.Event{To: lifecycle.Pending, Attempt: next, Reason: lifecycle.ReasonRestarted, RestartGeneration: gen,
				Message: "restarted; waits for spec.state Running"}}, true
	case v1alpha1.DesiredStopped:
		ev := &lifecycle.Event{To: lifecycle.Stopped, Attempt: rec.Attempt, Reason: lifecycle.ReasonStopped, RestartGeneration: gen,
			Message: "stopped before it ran"}
		if rec.Status.Terminal() {
			ev.Reason, ev.Message = lifecycle.ReasonRestarted, "restart requested while spec.state is Stopped: set Running to start a new attempt"
		}
		return decision{Action: actRecord, Event: ev, Why: "restart requested while Stopped"}, true
	}
	return decision{Action: actNone, Why: "unknown desired state " + string(in.Desired)}, true
}

// driveTheRun moves a run this process holds toward spec.state, and watches its stall and pause
// timeouts.
func driveTheRun(in decisionInput) (decision, bool) {
	rec := in.Record
	if !in.RunnerActive || rec.Status.Terminal() {
		return decision{}, false
	}
	switch {
	case in.Desired == v1alpha1.DesiredStopped:
		return decision{Action: actStop, Why: "set Stopped"}, true
	case in.Desired == v1alpha1.DesiredPaused && rec.Status != lifecycle.Paused:
		return decision{Action: actPause, Why: "set Paused"}, true
	case in.Desired == v1alpha1.DesiredRunning && rec.Status == lifecycle.Paused:
		return decision{Action: actResume, Why: "set Running"}, true
	case rec.Status == lifecycle.Running && in.StallTimeout > 0:
		return watchStall(in), true
	case rec.Status == lifecycle.Paused && in.PauseTimeout > 0:
		return decision{Action: actNone, RequeueAfter: rec.TransitionedAt.Add(in.PauseTimeout).Sub(in.Now), Why: "paused; waiting for its pause timeout"}, true
	case rec.Status == lifecycle.Pending:
		return decision{Action: actNone, Why: "queued in the runner"}, true
	}
	return decision{Action: actNone, Why: "in the desired state"}, true
}

func waitForTheRunToSettle(in decisionInput) (decision, bool) {
	if !in.settling() {
		return decision{}, false
	}
	return decision{Action: actNone, RequeueAfter: kit.SettleDelay, Why: "waiting for the run to settle"}, true
}

// startPending starts a pending task that runs nowhere once spec.state is Running and its retry
// backoff has passed.
func startPending(in decisionInput) (decision, bool) {
	rec := in.Record
	if rec.Status != lifecycle.Pending {
		return decision{}, false
	}
	switch in.Desired {
	case v1alpha1.DesiredRunning:
		if wait := rec.RetryAt.Sub(in.Now); !rec.RetryAt.IsZero() && wait > 0 {
			return decision{Action: actNone, RequeueAfter: wait, Why: "retry backoff"}, true
		}
		return decision{Action: actStart, Attempt: max(rec.Attempt, 1), Resume: in.HasCheckpoint && rec.Attempt > 0,
			RestartGeneration: rec.RestartGeneration, Why: "pending and desired Running"}, true
	case v1alpha1.DesiredPaused:
		return decision{Action: actNone, Why: "pending until spec.state is Running"}, true
	case v1alpha1.DesiredStopped:
		return decision{Action: actRecord, Why: "pending task set Stopped",
			Event: &lifecycle.Event{To: lifecycle.Stopped, Attempt: rec.Attempt, Reason: lifecycle.ReasonStopped, Message: "stopped before it ran"}}, true
	}
	return decision{Action: actNone, Why: "unknown desired state " + string(in.Desired)}, true
}

// resumeAdopted handles a task recorded as Running or Paused that runs nowhere: adopted from
// the row after an operator restart, a failover, or from an owner that is gone.
func resumeAdopted(in decisionInput) (decision, bool) {
	rec := in.Record
	if rec.Status != lifecycle.Running && rec.Status != lifecycle.Paused {
		return decision{}, false
	}
	switch in.Desired {
	case v1alpha1.DesiredRunning:
		return decision{Action: actStart, Attempt: rec.Attempt, Resume: in.HasCheckpoint, RestartGeneration: rec.RestartGeneration,
			Why: "resume an adopted run"}, true
	case v1alpha1.DesiredPaused:
		if rec.Status == lifecycle.Running {
			return decision{Action: actRecord, Why: "adopted a running task that is now desired Paused",
				Event: &lifecycle.Event{To: lifecycle.Paused, Attempt: rec.Attempt, Reason: lifecycle.ReasonPaused,
					Message: "paused while it was not running; resumes from its last checkpoint"}}, true
		}
		d := decision{Action: actNone, Why: "paused; resumes from its checkpoint when set Running"}
		if in.PauseTimeout > 0 {
			d.RequeueAfter = rec.TransitionedAt.Add(in.PauseTimeout).Sub(in.Now)
		}
		return d, true
	case v1alpha1.DesiredStopped:
		return decision{Action: actRecord, Why: "set Stopped while not running here",
			Event: &lifecycle.Event{To: lifecycle.Stopped, Attempt: rec.Attempt, Reason: lifecycle.ReasonStopped, Message: "stopped"}}, true
	}
	return decision{Action: actNone, Why: "unknown desired state " + string(in.Desired)}, true
}

// retry schedules the next attempt of a failed one after its backoff, when retries are left.
func retry(in decisionInput) (decision, bool) {
	rec := in.Record
	if !retryDue(in.Desired, in.MaxRetries, rec) {
		return decision{}, false
	}
	next := rec.Attempt + 1
	at := rec.EndTime.Add(in.Backoff.wait(rec.Retries, in.JitterSeed, next))
	return decision{
		Action: actRecord, Why: "attempt failed, retries left",
		Event: &lifecycle.Event{To: lifecycle.Pending, Attempt: next, Reason: lifecycle.ReasonRetryScheduled, RetryAt: at,
			Message: fmt.Sprintf("retry %d of %d (attempt %d) starts at %s", rec.Retries+1, in.MaxRetries, next, at.UTC().Format(time.RFC3339))},
		RequeueAfter: max(at.Sub(in.Now), 0),
	}, true
}

// runAgainAfterStop starts a new attempt of a stopped task set Running again.
func runAgainAfterStop(in decisionInput) (decision, bool) {
	rec := in.Record
	if rec.Status != lifecycle.Stopped || in.Desired != v1alpha1.DesiredRunning {
		return decision{}, false
	}
	return decision{Action: actStart, Attempt: rec.Attempt + 1, RestartGeneration: rec.RestartGeneration,
		Why: "stopped task set Running: new attempt"}, true
}

// final: a terminal task stays as it is until a restart (re-applying a manifest never reruns
// finished work).
func final(in decisionInput) (decision, bool) {
	if !in.Record.Status.Terminal() {
		return decision{}, false
	}
	return decision{Action: actNone, Why: fmt.Sprintf("%s; bump restartGeneration to run again", in.Record.Status.Phase())}, true
}

// retryDue reports whether a failed attempt is followed by a retry.
func retryDue(desired v1alpha1.DesiredState, maxRetries int, rec lifecycle.Record) bool {
	return rec.Status == lifecycle.Failed && desired == v1alpha1.DesiredRunning && lifecycle.Retriable(rec.Reason) && rec.Retries < maxRetries
}

// passing reports whether the record is a step the reconciler is about to leave on its own: a
// failure with a retry due, or a stop on the way to a restart. The status writer waits for the
// next step instead of showing Failed or Stopped, phases the API defines as final.
func passing(spec v1alpha1.BackgroundTaskSpec, rec lifecycle.Record) bool {
	return retryDue(spec.State, int(spec.MaxRetries), rec) ||
		(rec.Status == lifecycle.Stopped && spec.RestartGeneration > rec.RestartGeneration && spec.State != v1alpha1.DesiredStopped)
}

// pauseTimedOut stops a task that has been Paused for longer than spec.pauseTimeout.
func pauseTimedOut(in decisionInput) (decision, bool) {
	rec := in.Record
	deadline := rec.TransitionedAt.Add(in.PauseTimeout)
	if rec.Status != lifecycle.Paused || in.PauseTimeout <= 0 || in.Now.Before(deadline) {
		return decision{}, false
	}
	if in.Desired == v1alpha1.DesiredRunning && !in.ResumeAt.IsZero() && in.ResumeAt.Before(deadline) {
		return decision{}, false // spec.resumeAt came first (the operator looks late): resume
	}
	msg := fmt.Sprintf("stopped after being paused for more than its pause timeout of %s", in.PauseTimeout)
	if in.RunnerActive {
		return decision{Action: actStop, StopReason: lifecycle.ReasonPauseTimeout, StopMessage: msg, Why: "pause timeout"}, true
	}
	return decision{Action: actRecord, Why: "pause timeout",
		Event: &lifecycle.Event{To: lifecycle.Stopped, Attempt: rec.Attempt, Reason: lifecycle.ReasonPauseTimeout, Message: msg}}, true
}

// stallRecheck bounds how long a stalled task waits before it is looked at again.
const stallRecheck = 10 * time.Second

// watchStall records that a running task stalled (no sign of life for spec.stallTimeout) or
// that it came back to life, as Running -> Running transitions, and looks again when the
// answer could change.
func watchStall(in decisionInput) decision {
	rec := in.Record
	if in.LastActivity.IsZero() {
		return decision{Action: actNone, Why: "running", RequeueAfter: in.StallTimeout}
	}
	idle := in.Now.Sub(in.LastActivity)
	stalled := rec.Reason == lifecycle.ReasonStalled
	switch {
	case idle >= in.StallTimeout && !stalled:
		return decision{Action: actRecord, Why: "stalled", RequeueAfter: min(in.StallTimeout, stallRecheck),
			Event: &lifecycle.Event{To: lifecycle.Running, Attempt: rec.Attempt, Reason: lifecycle.ReasonStalled,
				Message: fmt.Sprintf("no pause point, progress, checkpoint or heartbeat for %s (stallTimeout %s)", idle.Truncate(time.Second), in.StallTimeout)}}
	case idle < in.StallTimeout && stalled:
		return decision{Action: actRecord, Why: "alive again", RequeueAfter: in.StallTimeout - idle,
			Event: &lifecycle.Event{To: lifecycle.Running, Attempt: rec.Attempt, Reason: lifecycle.ReasonStallEnded,
				Message: "the task shows signs of life again"}}
	case stalled:
		return decision{Action: actNone, Why: "stalled", RequeueAfter: min(in.StallTimeout, stallRecheck)}
	}
	return decision{Action: actNone, Why: "running", RequeueAfter: in.StallTimeout - idle}
}
