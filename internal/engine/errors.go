package engine

import "errors"

// Errors of the engine's own calls (the operator's, not a task's); every error returned by this
// package wraps one of these or one of package runner's.
var (
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
)
