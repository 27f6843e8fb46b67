package builtin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// CountdownParams are the params of the "countdown" (demo) task type.
type CountdownParams struct {
	// From is the number to count down from.
	From int `json:"from" jsonschema:"required,minimum=1,maximum=1000000,description=the number to count down from,example=100"`
	// Interval is the time one step takes.
	Interval runner.Duration `json:"interval" jsonschema:"required,description=time one step takes,example=500ms"`
	// CheckpointEvery is the number of steps between checkpoints (default 1).
	CheckpointEvery int `json:"checkpointEvery,omitempty" jsonschema:"minimum=1,description=steps between checkpoints (default 1)"`
}

// TaskName names the type.
func (CountdownParams) TaskName() string { return "countdown" }

// Validate checks what the JSON types cannot.
func (p CountdownParams) Validate() error {
	switch {
	case p.From <= 0 || p.From > maxCountdownFrom:
		return fmt.Errorf(`"from" must be between 1 and %d, got %d`, maxCountdownFrom, p.From)
	case p.Interval <= 0:
		return errors.New(`"interval" is required and must be positive, e.g. "500ms"`)
	case p.CheckpointEvery < 0:
		return fmt.Errorf(`"checkpointEvery" must be positive, got %d`, p.CheckpointEvery)
	}
	return nil
}

type countdownCheckpoint struct {
	Done int `json:"done"`
}

// countdownTask counts from From down to zero, one step per Interval.
type countdownTask struct {
	runner.Base
	p CountdownParams
}

// CountdownResult is the result of the "countdown" task type.
type CountdownResult struct {
	Counted int `json:"counted"`
}

// maxCountdownFrom keeps a typo from creating a task that runs for years.
const maxCountdownFrom = 1_000_000

func newCountdownTask(p CountdownParams) (runner.Task[CountdownResult], error) {
	if p.CheckpointEvery == 0 {
		p.CheckpointEvery = 1
	}
	return &countdownTask{p: p}, nil
}

func (t *countdownTask) Run(ctx context.Context, ctl runner.Control) (CountdownResult, error) {
	var cp countdownCheckpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil {
		return CountdownResult{}, fmt.Errorf("countdown: %w", err)
	}
	done := min(max(cp.Done, 0), t.p.From)
	for done < t.p.From {
		ctl.SetProgress(fmt.Sprintf("%d/%d", done, t.p.From))
		if err := ctl.Sleep(ctx, time.Duration(t.p.Interval)); err != nil {
			return CountdownResult{}, err
		}
		done++
		if done%t.p.CheckpointEvery == 0 || done == t.p.From {
			if err := ctl.SaveCheckpoint(ctx, countdownCheckpoint{Done: done}); err != nil {
				return CountdownResult{}, fmt.Errorf("countdown: %w", err)
			}
		}
	}
	ctl.SetProgress(fmt.Sprintf("%d/%d", t.p.From, t.p.From))
	return CountdownResult{Counted: t.p.From}, nil
}
