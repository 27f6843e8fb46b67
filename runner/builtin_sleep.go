package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SleepParams are the params of the "sleep" task type.
type SleepParams struct {
	// Duration is the total time to sleep.
	Duration Duration `json:"duration" jsonschema:"required,description=total time to sleep,example=30s"`
	// Tick is the pause, progress and checkpoint granularity (default 1s).
	Tick Duration `json:"tick,omitempty" jsonschema:"description=pause/progress/checkpoint granularity (default 1s),example=1s"`
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
	Elapsed Duration `json:"elapsed"`
}

// sleepTask sleeps in ticks. Only completed ticks count as elapsed, and the
// elapsed time is checkpointed, so a paused or restarted sleep continues
// where it was instead of starting over.
type sleepTask struct {
	Base
	p SleepParams
}

func newSleepTask(p SleepParams) (Task, error) {
	if p.Tick == 0 {
		p.Tick = Duration(time.Second)
	}
	return &sleepTask{p: p}, nil
}

func (t *sleepTask) Run(ctx context.Context, ctl Control) (json.RawMessage, error) {
	total, tick := time.Duration(t.p.Duration), time.Duration(t.p.Tick)
	var cp sleepCheckpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil {
		return nil, fmt.Errorf("sleep: %w", err)
	}
	elapsed := min(max(time.Duration(cp.Elapsed), 0), total)
	for elapsed < total {
		ctl.SetProgress(fmt.Sprintf("%s/%s", elapsed, total))
		if err := ctl.Yield(ctx); err != nil {
			return nil, err
		}
		step := min(tick, total-elapsed)
		if err := sleepCtx(ctx, step); err != nil {
			return nil, err
		}
		elapsed += step
		if err := ctl.SaveCheckpoint(ctx, sleepCheckpoint{Elapsed: Duration(elapsed)}); err != nil {
			return nil, fmt.Errorf("sleep: %w", err)
		}
	}
	ctl.SetProgress(fmt.Sprintf("%s/%s", total, total))
	return json.Marshal(map[string]string{"slept": total.String()})
}
