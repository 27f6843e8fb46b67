package engine_test

import (
	"context"
	"encoding/json"

	"github.com/taskpilot/taskpilot/runner"
)

// badResult returns a result that is not JSON.
type badResult struct{ runner.Base }

func (badResult) Run(context.Context, runner.Control) (json.RawMessage, error) {
	return json.RawMessage(`{not json`), nil
}

// noYield blocks without ever calling Yield, so a pause request stays pending.
type noYield struct {
	runner.Base
	block chan struct{}
}

func (t *noYield) Run(ctx context.Context, _ runner.Control) (json.RawMessage, error) {
	select {
	case <-t.block:
		return json.RawMessage(`{}`), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
