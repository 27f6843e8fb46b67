package runner

import (
	"context"
	"encoding/json"
)

// noopTask finishes at once with {}; it measures the runner's own overhead.
type noopTask struct{ Base }

// NoopParams are the params of the "noop" task type: none ({} or nothing).
type NoopParams struct{}

// TaskName names the type.
func (NoopParams) TaskName() string { return "noop" }

func newNoopTask(NoopParams) (Task, error) { return noopTask{}, nil }

func (noopTask) Run(context.Context, Control) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}
