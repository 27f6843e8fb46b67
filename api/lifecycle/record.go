package lifecycle

import "time"

// Record is the lifecycle part of one background_tasks row: everything a decision about the
// task needs besides its spec. Zero times stand for SQL NULL.
type Record struct {
	Status  Status
	Attempt int
	// Reason and Message explain the latest transition (copied from it).
	Reason  string
	Message string
	// Seq is the seq of the latest transition (background_tasks.last_seq).
	Seq int64
	// StartTime is when the current attempt first entered Running; zero until it does.
	StartTime time.Time
	// EndTime is when the task reached a terminal status; zero while it is not terminal.
	EndTime time.Time
	// LastRunTime is the latest time the task entered Running, in any attempt.
	LastRunTime time.Time
	// RetryAt is when a scheduled retry may start (Pending after RetryScheduled only).
	RetryAt time.Time
	// Retries counts the retries scheduled since the last attempt that was not a retry
	// (creation, a restart, a run after Stopped): what spec.maxRetries is compared with.
	Retries int
	// RestartGeneration is the highest spec.restartGeneration honoured so far.
	RestartGeneration int64
	// TransitionedAt is when the latest transition happened: since when the task is in its
	// status (a pause timeout counts from it).
	TransitionedAt time.Time
}

// Transition is one history row of background_task_transitions: seq, from, to, the attempt
// after the transition, why, when, and the two inputs of later decisions that the row
// carries (retry_at, restart_generation). Replaying them rebuilds the Record.
type Transition struct {
	Seq int64
	// From is "" for seq 1 only.
	From              Status
	To                Status
	Attempt           int
	Reason            string
	Message           string
	At                time.Time
	RetryAt           time.Time
	RestartGeneration int64
}

// Event is a change someone wants to record: the runner reporting what a run did, or the
// controller deciding (a retry, a restart, a stop of a task that runs nowhere).
type Event struct {
	To Status
	// Attempt is the attempt after the event: the record's attempt, or one more to start a
	// new attempt (which clears the checkpoint, result and start time).
	Attempt int
	Reason  string
	Message string
	At      time.Time
	// RetryAt is when a retry may start (To Pending with ReasonRetryScheduled only).
	RetryAt time.Time
	// RestartGeneration is the spec.restartGeneration this event honours; lower values than
	// the record's keep the record's.
	RestartGeneration int64
	// Span is the W3C traceparent of the execution that made the change ("" when it was not
	// traced or the controller decided it): the row keeps the latest one, so the task's next
	// execution, in any process, links its span to it. It plays no part in any decision.
	Span string
}

// Create returns the record of a new task and its history row seq 1 (NULL -> PENDING).
func Create(at time.Time, restartGeneration int64) (Record, Transition) {
	tr := Transition{Seq: 1, To: Pending, Reason: ReasonCreated, At: at, RestartGeneration: restartGeneration}
	return Apply(Record{}, tr), tr
}

// NewAttempt reports whether tr starts a new attempt relative to prev: then the task's
// checkpoint belongs to the old attempt and is dropped.
func NewAttempt(prev Record, tr Transition) bool { return tr.Attempt != prev.Attempt }
