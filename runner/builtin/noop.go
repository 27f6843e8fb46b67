package builtin

import (
	"context"

	"github.com/taskpilot/taskpilot/runner"
)

// noopTask finishes at once with {}; it measures the runner's own overhead.
type noopTask struct{ runner.Base }

// NoopParams are the params of the "noop" task type: none ({} or nothing).
type NoopParams struct{}

// TaskName names the type.
func (NoopParams) TaskName() string { return "noop" }

func newNoopTask(NoopParams) (runner.Task[struct{}], error) { return noopTask{}, nil }

func (noopTask) Run(context.Context, runner.Control) (struct{}, error) { return struct{}{}, nil }
