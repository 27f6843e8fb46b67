package runner

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of these so
// callers can branch with errors.Is without parsing text.
var (
	// ErrUnknownTaskType: the StartSpec names a task type nobody registered.
	ErrUnknownTaskType = errors.New("runner: unknown task type")
	// ErrInvalidParams: a Factory rejected the params (see ParamsError).
	ErrInvalidParams = errors.New("runner: invalid task params")
	// ErrAlreadyActive: StartTask for a key whose current run is not terminal.
	ErrAlreadyActive = errors.New("runner: task already active")
	// ErrNotFound: the runner has no entry for the key.
	ErrNotFound = errors.New("runner: task not found")
	// ErrTerminal: the call needs a live run but the entry is terminal.
	ErrTerminal = errors.New("runner: task is terminal")
	// ErrActive: Forget on an entry that is not terminal yet.
	ErrActive = errors.New("runner: task is still active")
	// ErrNotStarted: a task call arrived before Runner.Start was running.
	ErrNotStarted = errors.New("runner: runner not started")
	// ErrStillRunning: StartTask for a key whose previous run was reported over but whose
	// goroutine has not returned (it ignored its cancellation: see Stats.Abandoned). Go cannot
	// stop it, and a new run beside it would run the task twice; try again once it returned
	// (Options.Returned says when).
	ErrStillRunning = errors.New("runner: the task's previous run has not returned yet")
	// ErrCheckpointTooLarge: the encoded checkpoint exceeds MaxCheckpointBytes.
	ErrCheckpointTooLarge = errors.New("runner: checkpoint too large")

	// ErrStopped is the cancellation cause of a run stopped with StopTask.
	// Yield returns it; context.Cause(ctx) reports it.
	ErrStopped = errors.New("runner: task stopped")
	// ErrDeadlineExceeded is the cancellation cause of a run whose running
	// time exceeded StartSpec.Timeout.
	ErrDeadlineExceeded = errors.New("runner: task deadline exceeded")
	// ErrShutdown is the cancellation cause when the runner itself stops
	// (leader lost, pod terminating). It is not a task outcome: no transition
	// is reported, so the durable record keeps the task Running/Paused and the
	// next leader resumes it from its last checkpoint.
	ErrShutdown = errors.New("runner: runner shutting down")
	// ErrLeaseLost is the cancellation cause when this process can no longer be sure it owns
	// its tasks (its membership lease was not renewed in time, see Options.Lease): another
	// process may run them now. Like ErrShutdown it reports no transition; the runner accepts
	// no more work.
	ErrLeaseLost = errors.New("runner: membership lease lost")
	// ErrHandedOver is the cancellation cause of a run handed over to another process
	// (HandOver): like ErrShutdown for this one run, it reports no transition and calls no
	// Post, so the next owner resumes the attempt from its last checkpoint.
	ErrHandedOver = errors.New("runner: task handed over to another operator")
)

// ParamsError is returned (wrapped) by Registry.New when a Factory rejects its
// params. It matches ErrInvalidParams with errors.Is and unwraps to the
// factory's own error, so the user-facing message keeps the factory's detail.
type ParamsError struct {
	TaskName string
	Err      error
}

func (e *ParamsError) Error() string {
	return fmt.Sprintf("invalid params for task type %q: %v", e.TaskName, e.Err)
}

// Unwrap exposes the factory's error.
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
