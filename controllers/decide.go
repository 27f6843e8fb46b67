package controllers

import (
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// Reasons the controller itself records (the runner's own reasons are documented in runner).
const (
	ReasonRetryScheduled  = "RetryScheduled"
	ReasonRestarted       = "Restarted"
	ReasonStopped         = "Stopped"
	ReasonPaused          = "Paused"
	ReasonDatabaseBacklog = "DatabaseUnreachable"
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

// observedTask is the actual state decide looks at.
type observedTask struct {
	Status  store.Status
	Attempt int
	Reason  string
	// At is when the latest transition happened.
	At time.Time
	// HasCheckpoint: a checkpoint of this attempt was adopted from the database.
	HasCheckpoint bool
	// Handed: this process handed the current attempt to the runner.
	Handed bool
	// RunnerActive: the runner holds a non-terminal run for the task.
	RunnerActive bool
	// Fenced: the database rejected our transitions; another operator owns the task.
	Fenced bool
}

type decisionInput struct {
	Desired                   v1alpha1.DesiredState
	RestartGeneration         int64
	ObservedRestartGeneration int64
	MaxRetries                int
	Observed                  observedTask
	Now                       time.Time
}

type decision struct {
	Action action
	// Attempt is the attempt to start (actStart).
	Attempt int
	// Resume starts from the adopted checkpoint instead of from scratch (actStart).
	Resume bool
	// Change is the transition to record (actRecord).
	Change *Change
	// ObserveRestart marks spec.restartGeneration as honoured once the action is done.
	ObserveRestart bool
	// RequeueAfter asks for another look later (a retry backoff, a run settling).
	RequeueAfter time.Duration
	// Why explains the decision in logs.
	Why string
}

// settleDelay is how long to wait for a runner transition that is in flight.
const settleDelay = 200 * time.Millisecond

// retryBackoff is the wait before attempt n+1 after attempt n failed: 1s, 2s, 4s, ... 5m.
func retryBackoff(failedAttempt int) time.Duration {
	if failedAttempt < 1 {
		failedAttempt = 1
	}
	if failedAttempt > 9 {
		return 5 * time.Minute
	}
	return min(time.Second<<(failedAttempt-1), 5*time.Minute)
}

// retriable reports whether a failure with this reason can succeed on another attempt. A spec
// that names an unknown type or carries invalid params fails the same way every time.
func retriable(reason string) bool {
	return reason != v1alpha1.ReasonUnknownTaskType && reason != v1alpha1.ReasonInvalidParams
}

// decide is the whole lifecycle policy as a pure function of spec and observed state: it has
// no side effects and no clock of its own, so it is table-tested without a cluster.
func decide(in decisionInput) decision {
	o := in.Observed
	if o.Fenced {
		if o.RunnerActive {
			return decision{Action: actStop, Why: "another operator owns this task"}
		}
		return decision{Action: actNone, Why: "another operator owns this task"}
	}
	// A run this process handed over is settling (its transition is on the way).
	settling := o.Handed && !o.RunnerActive && !o.Status.Terminal()

	if in.RestartGeneration > in.ObservedRestartGeneration {
		return decideRestart(in, settling)
	}

	switch o.Status {
	case store.StatusPending:
		return decidePending(in, settling)
	case store.StatusRunning, store.StatusPaused:
		return decideActive(in, settling)
	case store.StatusFailed:
		if in.Desired == v1alpha1.DesiredRunning && retriable(o.Reason) && o.Attempt-1 < in.MaxRetries {
			next := o.Attempt + 1
			return decision{
				Action: actRecord,
				Change: &Change{
					To: store.StatusPending, Attempt: next, Reason: ReasonRetryScheduled, ClearCheckpoint: true,
					Message: fmt.Sprintf("attempt %d of %d starts in %s", next, in.MaxRetries+1, retryBackoff(o.Attempt)),
				},
				RequeueAfter: retryBackoff(o.Attempt),
				Why:          "attempt failed, retries left",
			}
		}
		return decision{Action: actNone, Why: "failed; bump restartGeneration to run again"}
	case store.StatusStopped:
		if in.Desired == v1alpha1.DesiredRunning {
			return decision{Action: actStart, Attempt: o.Attempt + 1, Why: "stopped task set Running: new attempt"}
		}
		return decision{Action: actNone, Why: "stopped"}
	case store.StatusFinished:
		return decision{Action: actNone, Why: "finished; bump restartGeneration to run again"}
	}
	return decision{Action: actNone, Why: "unknown status " + string(o.Status)}
}

func decideRestart(in decisionInput, settling bool) decision {
	o := in.Observed
	next := o.Attempt + 1
	switch {
	case o.RunnerActive:
		// Stop first and start the new attempt once the run is over: waiting for the stop here
		// would block a reconcile worker for up to the stop grace.
		return decision{Action: actStop, RequeueAfter: settleDelay, Why: "restart requested: stopping the current run first"}
	case settling:
		return decision{Action: actNone, RequeueAfter: settleDelay, Why: "restart requested: waiting for the run to settle"}
	}
	switch in.Desired {
	case v1alpha1.DesiredRunning:
		return decision{Action: actStart, Attempt: next, ObserveRestart: true, Why: "restart requested"}
	case v1alpha1.DesiredPaused:
		return decision{
			Action: actRecord, ObserveRestart: true, Why: "restart requested while Paused",
			Change: &Change{To: store.StatusPending, Attempt: next, Reason: ReasonRestarted, ClearCheckpoint: true,
				Message: "restarted; waits for spec.state Running"},
		}
	case v1alpha1.DesiredStopped:
		if !o.Status.Terminal() {
			return decision{Action: actRecord, ObserveRestart: true, Why: "restart requested while Stopped",
				Change: &Change{To: store.StatusStopped, Attempt: o.Attempt, Reason: ReasonStopped, Message: "stopped before it ran"}}
		}
		return decision{Action: actNone, ObserveRestart: true, Why: "restart requested while Stopped: nothing to run"}
	}
	return decision{Action: actNone, Why: "unknown desired state " + string(in.Desired)}
}

func decidePending(in decisionInput, settling bool) decision {
	o := in.Observed
	if o.RunnerActive {
		switch in.Desired {
		case v1alpha1.DesiredPaused:
			return decision{Action: actPause, Why: "queued task set Paused"}
		case v1alpha1.DesiredStopped:
			return decision{Action: actStop, Why: "queued task set Stopped"}
		case v1alpha1.DesiredRunning:
		}
		return decision{Action: actNone, Why: "queued for a runner slot"}
	}
	if settling {
		return decision{Action: actNone, RequeueAfter: settleDelay, Why: "waiting for the run to settle"}
	}
	switch in.Desired {
	case v1alpha1.DesiredRunning:
		if o.Reason == ReasonRetryScheduled {
			if wait := retryBackoff(o.Attempt-1) - in.Now.Sub(o.At); wait > 0 {
				return decision{Action: actNone, RequeueAfter: wait, Why: "retry backoff"}
			}
		}
		return decision{Action: actStart, Attempt: max(o.Attempt, 1), Resume: o.HasCheckpoint, Why: "pending and desired Running"}
	case v1alpha1.DesiredPaused:
		return decision{Action: actNone, Why: "pending until spec.state is Running"}
	case v1alpha1.DesiredStopped:
		return decision{Action: actRecord, Why: "pending task set Stopped",
			Change: &Change{To: store.StatusStopped, Attempt: o.Attempt, Reason: ReasonStopped, Message: "stopped before it ran"}}
	}
	return decision{Action: actNone, Why: "unknown desired state " + string(in.Desired)}
}

// decideActive handles RUNNING and PAUSED.
func decideActive(in decisionInput, settling bool) decision {
	o := in.Observed
	if o.RunnerActive {
		switch {
		case in.Desired == v1alpha1.DesiredStopped:
			return decision{Action: actStop, Why: "set Stopped"}
		case in.Desired == v1alpha1.DesiredPaused && o.Status == store.StatusRunning:
			return decision{Action: actPause, Why: "set Paused"}
		case in.Desired == v1alpha1.DesiredRunning && o.Status == store.StatusPaused:
			return decision{Action: actResume, Why: "set Running"}
		}
		return decision{Action: actNone, Why: "in the desired state"}
	}
	if settling {
		return decision{Action: actNone, RequeueAfter: settleDelay, Why: "waiting for the run to settle"}
	}
	// Recorded as RUNNING or PAUSED but not running in this process: adopted from the database
	// after an operator restart or a leader change.
	switch in.Desired {
	case v1alpha1.DesiredRunning:
		return decision{Action: actStart, Attempt: max(o.Attempt, 1), Resume: o.HasCheckpoint, Why: "resume after operator restart"}
	case v1alpha1.DesiredPaused:
		if o.Status == store.StatusRunning {
			return decision{Action: actRecord, Why: "was running when the operator stopped; now desired Paused",
				Change: &Change{To: store.StatusPaused, Attempt: o.Attempt, Reason: ReasonPaused,
					Message: "paused while the operator was away; resumes from its last checkpoint"}}
		}
		return decision{Action: actNone, Why: "paused; resumes from its checkpoint when set Running"}
	case v1alpha1.DesiredStopped:
		return decision{Action: actRecord, Why: "set Stopped while not running here",
			Change: &Change{To: store.StatusStopped, Attempt: o.Attempt, Reason: ReasonStopped, Message: "stopped"}}
	}
	return decision{Action: actNone, Why: "unknown desired state " + string(in.Desired)}
}
