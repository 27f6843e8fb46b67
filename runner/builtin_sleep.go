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
	Duration Duration `json:"duration"`       // total time to sleep, required, > 0
	Tick     Duration `json:"tick,omitempty"` // pause/progress/checkpoint granularity, default 1s
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

// NewSleepTask validates {"duration":"30s","tick":"1s"}.
func NewSleepTask(params json.RawMessage) (Task, error) {
	var p SleepParams
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if p.Duration <= 0 {
		return nil, errors.New(`"duration" is required and must be positive, e.g. "30s"`)
	}
	if p.Tick < 0 {
		return nil, errors.New(`"tick" must be positive, e.g. "1s"`)
	}
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
