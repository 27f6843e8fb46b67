package lifecycle

import "strings"

// Status is the observed lifecycle state, stored in background_tasks.status and
// background_task_transitions.{from,to}_status, and shown (as Phase) in the BackgroundTask's
// status.phase. The values are a public SQL contract: never rename one, only add. Which moves
// lead in and out of each is the table in next.go (Legal); docs/architecture.md draws it.
type Status string

// The statuses:
//   - Pending: accepted but not running (created, waiting for a slot, for a retry's backoff, or
//     for spec.state Running);
//   - Running: the task's goroutine executes in its owner's process;
//   - Paused: parked at a pause point, holding no runner slot;
//   - Finished (terminal): the run returned a result, kept in the row's result column;
//   - Failed (terminal): the attempt failed; the reason says why and whether a retry can help;
//   - Stopped (terminal): cancelled on request.
const (
	Pending  Status = "PENDING"
	Running  Status = "RUNNING"
	Paused   Status = "PAUSED"
	Finished Status = "FINISHED"
	Failed   Status = "FAILED"
	Stopped  Status = "STOPPED"
)

// All lists every status in lifecycle order: the values the SQL CHECK constraints allow and
// the CRD's phases, one to one.
func All() []Status { return []Status{Pending, Running, Paused, Finished, Failed, Stopped} }

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

// Phase is the status as a BackgroundTask shows it in status.phase (and kubectl in its PHASE
// column): the same word, capitalised ("RUNNING" is "Running"). It is the one mapping between
// the two spellings; "" for an invalid status.
func (s Status) Phase() string {
	if !s.Valid() {
		return ""
	}
	return string(s[:1]) + strings.ToLower(string(s[1:]))
}

// StatusOfPhase is the inverse of Phase: the status a phase shows, false for an unknown phase.
func StatusOfPhase(phase string) (Status, bool) {
	s := Status(strings.ToUpper(phase))
	return s, s.Valid()
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
