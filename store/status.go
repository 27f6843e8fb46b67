package store

// Status is the observed lifecycle state stored in background_tasks.status and
// background_task_transitions.{from,to}_status. The values are a public SQL
// contract: never rename one, only add.
type Status string

const (
	// StatusPending: accepted but not running. In: creation (CreateTask, seq 1),
	// a retry waiting for backoff, waiting for a runner slot, created paused.
	// Out: RUNNING when a slot is free; PAUSED or STOPPED on request.
	StatusPending Status = "PENDING"
	// StatusRunning: the task's goroutine is executing. In: from PENDING, or
	// from PAUSED on resume. Out: PAUSED, FINISHED, FAILED, STOPPED, or PENDING
	// for a retry. Sets last_run_time.
	StatusRunning Status = "RUNNING"
	// StatusPaused: parked at a pause point, holding no runner slot. In: from
	// RUNNING after a pause request. Out: RUNNING (resume) or STOPPED.
	StatusPaused Status = "PAUSED"
	// StatusFinished (terminal): the run returned without error; result is set.
	// Out: only a restart, which starts a new attempt.
	StatusFinished Status = "FINISHED"
	// StatusFailed (terminal): the last attempt failed with no retries left.
	// Out: only a restart, which starts a new attempt.
	StatusFailed Status = "FAILED"
	// StatusStopped (terminal): cancelled because the desired state became
	// STOPPED. Out: a restart or desired state RUNNING starts a new attempt.
	StatusStopped Status = "STOPPED"
)

// Statuses lists every Status in lifecycle order.
func Statuses() []Status {
	return []Status{StatusPending, StatusRunning, StatusPaused, StatusFinished, StatusFailed, StatusStopped}
}

// Terminal reports whether no further work happens without a new attempt.
// Terminal rows, and only those, have end_time set (enforced by a CHECK).
func (s Status) Terminal() bool {
	switch s {
	case StatusFinished, StatusFailed, StatusStopped:
		return true
	case StatusPending, StatusRunning, StatusPaused:
		return false
	}
	return false
}

// Active reports whether the operator must resume the task after a restart.
func (s Status) Active() bool {
	switch s {
	case StatusPending, StatusRunning, StatusPaused:
		return true
	case StatusFinished, StatusFailed, StatusStopped:
		return false
	}
	return false
}

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool { return s.Terminal() || s.Active() }

// DesiredState is what the user asked for (spec.state), stored in
// background_tasks.desired_state. Changed only through UpdateTask.
type DesiredState string

const (
	DesiredRunning DesiredState = "RUNNING"
	DesiredPaused  DesiredState = "PAUSED"
	DesiredStopped DesiredState = "STOPPED"
)

// Valid reports whether d is one of the defined desired states.
func (d DesiredState) Valid() bool {
	switch d {
	case DesiredRunning, DesiredPaused, DesiredStopped:
		return true
	default:
		return false
	}
}
