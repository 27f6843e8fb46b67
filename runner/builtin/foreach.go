package builtin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// ForeachParams are the params of the "foreach" task type, which runs its BackgroundTask's
// items (spec.items): each one waits Each, and the items listed in Fail fail while the task's
// attempt is below FailUntilAttempt (0: always). A demo of items, and what the benchmarks and
// the chaos run use.
type ForeachParams struct {
	Each             runner.Duration `json:"each,omitempty" jsonschema:"description=how long each item takes (default 0: at once),example=100ms"`
	Fail             []int           `json:"fail,omitempty" jsonschema:"description=indexes of the items that fail,example=3"`
	FailUntilAttempt int             `json:"failUntilAttempt,omitempty" jsonschema:"description=the items in fail succeed from this attempt of the task on (0: they always fail),minimum=0"`
}

// TaskName names the type.
func (ForeachParams) TaskName() string { return "foreach" }

// Validate checks what the JSON types cannot.
func (p ForeachParams) Validate() error {
	switch {
	case p.Each < 0:
		return errors.New(`"each" must not be negative`)
	case p.FailUntilAttempt < 0:
		return errors.New(`"failUntilAttempt" must not be negative`)
	}
	return nil
}

type foreachTask struct{ p ForeachParams }

func newForeachTask(p ForeachParams) (runner.ItemTask[map[string]any], error) {
	slices.Sort(p.Fail)
	return &foreachTask{p: p}, nil
}

func (t *foreachTask) RunItem(ctx context.Context, ctl runner.ItemControl, item runner.Item[map[string]any]) error {
	if d := time.Duration(t.p.Each); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if _, failing := slices.BinarySearch(t.p.Fail, item.Index); failing && (t.p.FailUntilAttempt == 0 || ctl.Attempt() < t.p.FailUntilAttempt) {
		return fmt.Errorf("item %d fails as params.fail says", item.Index)
	}
	return nil
}
