package store

import (
	"context"
	"encoding/json"
	"time"
)

// Repository is what the controller depends on. Every method honours ctx
// (cancellation and deadline); callers are expected to pass a deadline.
// Errors for which IsTransient is true are worth retrying unchanged.
type Repository interface {
	// CreateTask inserts the row (status PENDING, attempt 0, last_seq 1) and
	// history seq 1 (NULL -> PENDING, reason "Created") in one statement.
	// Idempotent on t.UID: if the row exists, created is false and *t is
	// overwritten with the stored row. If the existing row is soft-deleted the
	// UID is burnt and ErrAlreadyExists is returned. On success *t holds the
	// stored row (ID, timestamps).
	CreateTask(ctx context.Context, t *Task) (created bool, err error)

	// GetTask returns the non-deleted row with this UID, or ErrNotFound.
	GetTask(ctx context.Context, uid string) (*Task, error)

	// ListTasks returns non-deleted rows matching opts ordered by id, and a
	// continue token for the next page ("" when this is the last page).
	ListTasks(ctx context.Context, opts ListOptions) ([]Task, string, error)

	// UpdateTask changes non-lifecycle fields of a non-deleted row
	// (ErrNotFound otherwise). It never touches status, attempt or last_seq:
	// that is RecordTransition's job.
	UpdateTask(ctx context.Context, uid string, u TaskUpdate) error

	// RecordTransition applies tr to the row and appends it to the history,
	// atomically, if and only if the row is in the state tr expects (status
	// From, attempt PrevAttempt, last_seq Seq-1, not deleted). Replaying an
	// already recorded transition (same uid, seq, from, to, attempt) returns
	// nil without writing. Anything else returns an error wrapping
	// ErrStaleTransition (or ErrNotFound); nothing is ever overwritten.
	RecordTransition(ctx context.Context, tr Transition) error

	// SaveCheckpoint stores data as the checkpoint of the given attempt. It
	// returns ErrCheckpointTooLarge (before any round trip) for data over
	// MaxCheckpointSize, ErrInvalidArgument for invalid JSON, ErrNotFound for
	// a missing or deleted row, and ErrStaleTransition when the row has moved
	// on to another attempt.
	SaveCheckpoint(ctx context.Context, uid string, attempt int, data json.RawMessage) error

	// LoadCheckpoint returns the stored checkpoint and the attempt it belongs
	// to; (nil, 0, nil) when there is none. ErrNotFound for a missing row.
	LoadCheckpoint(ctx context.Context, uid string) (json.RawMessage, int, error)

	// ListActive returns all non-deleted rows in PENDING, RUNNING or PAUSED,
	// ordered by id: what the operator reloads on startup.
	ListActive(ctx context.Context) ([]Task, error)

	// MarkDeleted soft-deletes the row (deleted_at = now()), keeping it and its
	// history for SQL users. Idempotent; an unknown UID is not an error.
	MarkDeleted(ctx context.Context, uid string) error

	// History returns the transitions of a task ordered by seq, including for
	// soft-deleted tasks. ErrNotFound when there are none.
	History(ctx context.Context, uid string) ([]TransitionRecord, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

// Transition is one lifecycle change, as decided by the controller.
type Transition struct {
	TaskUID string
	// Seq must be the row's last_seq+1. The controller's recorder, the single
	// writer of a task's lifecycle, assigns it; seq 1 is CreateTask's.
	Seq int64
	// From guards: the row's status must equal From.
	From Status
	// PrevAttempt guards: the row's attempt must equal PrevAttempt.
	PrevAttempt int
	To          Status
	// Attempt is the attempt after the transition; it differs from
	// PrevAttempt exactly when a new attempt starts. A new attempt clears
	// result and end_time.
	Attempt int
	// Reason is a CamelCase machine-readable cause (required).
	Reason string
	// Message is stored on the history row and as the row's current message;
	// truncated to MaxMessageLen characters.
	Message string
	// At is when the transition happened (required); it becomes the history
	// row's at, end_time for terminal states and last_run_time for RUNNING.
	At time.Time
	// Progress replaces the row's progress verbatim ("" clears it);
	// truncated to MaxProgressLen characters.
	Progress string
	// Result is stored when To is FINISHED (nil stores NULL); ignored
	// otherwise. At most MaxResultSize bytes.
	Result json.RawMessage
	// StartTime, when non-nil, becomes start_time (the attempt's start).
	StartTime *time.Time
	// ClearCheckpoint drops the checkpoint: the new attempt starts from scratch.
	ClearCheckpoint bool
}

// ListOptions filters and pages ListTasks. Zero values mean "no filter".
type ListOptions struct {
	Namespace string
	TaskName  string
	Statuses  []Status
	// Limit is the page size: 0 means DefaultListLimit, capped at MaxListLimit.
	Limit int
	// Continue is the opaque token returned by the previous page.
	Continue string
}

// Page size bounds for ListTasks.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// TaskUpdate lists the non-lifecycle fields UpdateTask may change; nil fields
// are left alone.
type TaskUpdate struct {
	DesiredState *DesiredState
	Namespace    *string
	Name         *string
	// Progress refreshes the progress column between transitions (truncated to
	// MaxProgressLen characters).
	Progress *string
}
