// Package builtin has taskpilot's own task types: sleep, countdown, checksum, noop and foreach
// (a task with items). The
// taskpilot binary runs them; an operator of your own adds them with Register next to its own.
// They are written like any other task type (package runner), and their params are the ones
// documented in the README.
package builtin

import (
	"errors"

	"github.com/taskpilot/taskpilot/runner"
)

// Register adds the built-in task types to reg.
func Register(reg *runner.Registry) error {
	blocks := &blockPool{}
	return errors.Join(
		runner.Register(reg, "Sleeps for a duration in ticks, pausable and checkpointed after every tick", newSleepTask),
		runner.Register(reg, "Counts down from a number, one step per interval (a demo of pause, resume and checkpoints)", newCountdownTask),
		runner.Register(reg, "Hashes deterministic pseudo-random blocks into a SHA-256 chain (CPU-bound; resumes with the same digest)", blocks.newChecksumTask),
		runner.Register(reg, "Finishes at once with {} (measures the operator's own overhead)", newNoopTask),
		runner.RegisterItems(reg, "Runs its items (spec.items), each waiting params.each; the items in params.fail fail", newForeachTask),
	)
}
