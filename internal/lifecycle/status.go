package lifecycle

// Status is the observed lifecycle state, stored in background_tasks.status and
// background_task_transitions.{from,to}_status. The values are a public SQL contract: never
// rename one, only add.
type Status string

const (
	// Pending: accepted but not running. In: creation (seq 1), a retry waiting for its backoff
	// (reason RetryScheduled, retry_at set), waiting for a runner slot (Queued), a restart while
	// spec.state is Paused (Restarted). Out: Running, Paused, Stopped, Failed.
	Pending Status = "PENDING"
	// Running: the task's goroutine executes in its owner's process. Out: Paused, Finished,
	// Failed, Stopped; Pending when re-queued for a slot; Running again (same attempt) when a
	// new owner resumes it from its checkpoint.
	Running Status = "RUNNING"
	// Paused: parked at a pause point, holding no runner slot. Out: Running (resume), Pending
	// (resume waiting for a slot), Stopped, Failed (the resumed run cannot be built).
	Paused Status = "PAUSED"
	// Finished (terminal): the run returned a result; the row's result is set in this status
	// only. Out: a restart (new attempt).
	Finished Status = "FINISHED"
	// Failed (terminal): the attempt failed; reason says why and whether a retry can help.
	// Out: a retry or a restart (new attempt).
	Failed Status = "FAILED"
	// Stopped (terminal): cancelled on request. Out: a new attempt when spec.state is Running
	// again or restartGeneration grows.
	Stopped Status = "STOPPED"
)

// Terminal reports whether no further work happens in this status without a new attempt.
// Terminal rows, and only those, have end_time set.
func (s Status) Terminal() bool {
	switch s {
	case Finished, Failed, Stopped:
		return true
	case Pending, Running, Paused:
		return false
	}
	return false
}

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case Pending, Running, Paused, Finished, Failed, Stopped:
		return true
	}
	return false
}

// Desired is what the user asked for in spec.state, mirrored in background_tasks.desired_state
// for SQL users. Decisions read spec.state itself; this copy is informational.
type Desired string

const (
	DesiredRunning Desired = "RUNNING"
	DesiredPaused  Desired = "PAUSED"
	DesiredStopped Desired = "STOPPED"
)

// Valid reports whether d is one of the defined desired states.
func (d Desired) Valid() bool {
	switch d {
	case DesiredRunning, DesiredPaused, DesiredStopped:
		return true
	}
	return false
}
