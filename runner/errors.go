package runner

import (
	"errors"
	"fmt"
)

// Errors a task meets, or returns. Every error of this package wraps one of these, so callers
// branch with errors.Is without parsing text.
var (
	// ErrUnknownTaskType: spec.taskName names a task type this operator did not register.
	ErrUnknownTaskType = errors.New("runner: unknown task type")
	// ErrInvalidParams: the params do not decode into the type's params struct, or its
	// Validate refused them (see ParamsError). The task fails with reason InvalidParams, not
	// retried.
	ErrInvalidParams = errors.New("runner: invalid task params")
	// ErrCheckpointTooLarge: the encoded checkpoint exceeds MaxCheckpointBytes.
	ErrCheckpointTooLarge = errors.New("runner: checkpoint too large")

	// ErrStopped is the cancellation cause of a run whose task was set Stopped (or restarted).
	// Yield and Sleep return it; context.Cause(ctx) reports it.
	ErrStopped = errors.New("runner: task stopped")
	// ErrDeadlineExceeded is the cancellation cause of a run whose running time exceeded
	// spec.timeout (paused time does not count).
	ErrDeadlineExceeded = errors.New("runner: task deadline exceeded")
	// ErrShutdown is the cancellation cause when the operator stops (the pod is terminating).
	// It is not an outcome: nothing is recorded and Post is not called, so the task stays
	// Running in its row and the next operator resumes it from its last checkpoint.
	ErrShutdown = errors.New("runner: runner shutting down")
	// ErrLeaseLost is the cancellation cause when this operator can no longer be sure it owns
	// its tasks (its membership was not renewed in time): another one may run them now. Like
	// ErrShutdown it records nothing.
	ErrLeaseLost = errors.New("runner: membership lease lost")
	// ErrHandedOver is the cancellation cause of a run handed over to another operator replica
	// (sharding): like ErrShutdown for this one run, it records nothing and calls no Post, so
	// the next owner resumes the attempt from its last checkpoint.
	ErrHandedOver = errors.New("runner: task handed over to another operator")
	// ErrPermanent is matched (errors.Is) by the errors Permanent marks.
	ErrPermanent = errors.New("runner: permanent failure")
)

// Permanent marks err, returned from Run or Pre, as a failure that retrying cannot mend (a
// record that does not exist, a request the other side refused for good): the task ends Failed
// with reason PermanentError and is not retried, whatever spec.maxRetries says. A restart
// (spec.restartGeneration) still runs it again. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// ParamsError is returned (wrapped) by Registry.Build when a run's params do not decode, do not
// validate, or the constructor refuses them. It matches ErrInvalidParams with errors.Is and
// unwraps to the cause, so the message the task fails with keeps its detail.
type ParamsError struct {
	TaskName string
	Err      error
}

func (e *ParamsError) Error() string {
	return fmt.Sprintf("invalid params for task type %q: %v", e.TaskName, e.Err)
}

// Unwrap exposes the cause.
func (e *ParamsError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidParams) true.
func (e *ParamsError) Is(target error) bool { return target == ErrInvalidParams }

// CheckpointTooLargeError is returned by Control.SaveCheckpoint when the
// JSON encoding is bigger than MaxCheckpointBytes. Checkpoints live in a
// database row next to the task, so they must stay small; a task that needs
// more state should store it elsewhere and checkpoint a reference.
type CheckpointTooLargeError struct {
	Size  int
	Limit int
}

func (e *CheckpointTooLargeError) Error() string {
	return fmt.Sprintf("runner: checkpoint is %d bytes, limit is %d", e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrCheckpointTooLarge) true.
func (e *CheckpointTooLargeError) Is(target error) bool { return target == ErrCheckpointTooLarge }
