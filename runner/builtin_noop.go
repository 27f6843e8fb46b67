package runner

import (
	"context"
	"encoding/json"
)

// noopTask finishes at once with {}; it measures the runner's own overhead.
type noopTask struct{ Base }

// NewNoopTask accepts only empty params ({} or nothing).
func NewNoopTask(params json.RawMessage) (Task, error) {
	var p struct{}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	return noopTask{}, nil
}

func (noopTask) Run(context.Context, Control) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}
