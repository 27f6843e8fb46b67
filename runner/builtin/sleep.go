package builtin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// SleepParams are the params of the "sleep" task type.
type SleepParams struct {
	// Duration is the total time to sleep.
	Duration runner.Duration `json:"duration" jsonschema:"required,description=total time to sleep,example=30s"`
	// Tick is the pause, progress and checkpoint granularity (default 1s).
	Tick runner.Duration `json:"tick,omitempty" jsonschema:"description=pause/progress/checkpoint granularity (default 1s),example=1s"`
}

// TaskName names the type.
func (SleepParams) TaskName() string { return "sleep" }

// Validate checks what the JSON types cannot.
func (p SleepParams) Validate() error {
	switch {
	case p.Duration <= 0:
		return errors.New(`"duration" is required and must be positive, e.g. "30s"`)
	case p.Tick < 0:
		return errors.New(`"tick" must be positive, e.g. "1s"`)
	}
	return nil
}

type sleepCheckpoint struct {
	Elapsed runner.Duration `json:"elapsed"`
}

// sleepTask sleeps in ticks. Only completed ticks count as elapsed, and the
// elapsed time is checkpointed, so a paused or restarted sleep continues
// where it was instead of starting over.
type sleepTask struct {
	runner.Base
	p SleepParams
}

// SleepResult is the result of the "sleep" task type.
type SleepResult struct {
	Slept string `json:"slept"`
}

func newSleepTask(p SleepParams) (runner.Task[SleepResult], error) {
	if p.Tick == 0 {
		p.Tick = runner.Duration(time.Second)
	}
	return &sleepTask{p: p}, nil
}

func (t *sleepTask) Run(ctx context.Context, ctl runner.Control) (SleepResult, error) {
	total, tick := time.Duration(t.p.Duration), time.Duration(t.p.Tick)
	var cp sleepCheckpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil {
		return SleepResult{}, fmt.Errorf("sleep: %w", err)
	}
	elapsed := min(max(time.Duration(cp.Elapsed), 0), total)
	for elapsed < total {
		ctl.SetProgress(fmt.Sprintf("%s/%s", elapsed, total))
		step := min(tick, total-elapsed)
		if err := ctl.Sleep(ctx, step); err != nil {
			return SleepResult{}, err
		}
		elapsed += step
		if err := ctl.SaveCheckpoint(ctx, sleepCheckpoint{Elapsed: runner.Duration(elapsed)}); err != nil {
			return SleepResult{}, fmt.Errorf("sleep: %w", err)
		}
	}
	ctl.SetProgress(fmt.Sprintf("%s/%s", total, total))
	return SleepResult{Slept: total.String()}, nil
}
