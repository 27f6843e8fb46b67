package witness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// Params are the params of a witness task. Its work is Steps steps of Interval each.
type Params struct {
	Steps    int             `json:"steps"`    // required, 1..100000
	Interval runner.Duration `json:"interval"` // required, > 0
	// CheckpointEvery saves a checkpoint after every that many steps (0: never, so a resumed
	// run starts over).
	CheckpointEvery int `json:"checkpointEvery,omitempty"`
	// FailAttempts makes attempts 1..FailAttempts fail at step FailAtStep (retries succeed).
	FailAttempts int `json:"failAttempts,omitempty"`
	FailAtStep   int `json:"failAtStep,omitempty"`
}

type checkpoint struct {
	Done int `json:"done"`
}

type task struct {
	runner.Base
	p   Params
	rec *Recorder
}

// TaskName names the witness task type.
func (Params) TaskName() string { return TaskType }

// Validate checks what the JSON types cannot.
func (p Params) Validate() error {
	switch {
	case p.Steps < 1 || p.Steps > 100000:
		return fmt.Errorf(`"steps" must be between 1 and 100000, got %d`, p.Steps)
	case p.Interval <= 0:
		return errors.New(`"interval" is required and must be positive`)
	case p.CheckpointEvery < 0 || p.FailAttempts < 0 || p.FailAtStep < 0 || p.FailAtStep >= p.Steps:
		return errors.New(`"checkpointEvery", "failAttempts" must not be negative and "failAtStep" must be a step`)
	}
	return nil
}

// Register adds the witness task type, recording through rec, to reg.
func Register(reg *runner.Registry, rec *Recorder) error {
	return runner.Register(reg, "Records every execution and step in its own table (the chaos run's witness)",
		func(p Params) (runner.Task[json.RawMessage], error) { return &task{p: p, rec: rec}, nil })
}

// Run does Steps steps, each recorded by a mark before it is done.
func (t *task) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	var cp checkpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	done := min(max(cp.Done, 0), t.p.Steps)
	ex, err := t.rec.begin(ctx, ctl, done)
	if err != nil {
		return nil, err
	}
	if err := t.work(ctx, ctl, ex, &done); err != nil {
		ex.end(ctx, done, err)
		return nil, err
	}
	ex.end(ctx, done, nil)
	return json.Marshal(map[string]int{"steps": t.p.Steps})
}

func (t *task) work(ctx context.Context, ctl runner.Control, ex *execution, done *int) error {
	for *done < t.p.Steps {
		ctl.SetProgress(fmt.Sprintf("%d/%d", *done, t.p.Steps))
		if err := ctl.Yield(ctx); err != nil {
			return err
		}
		if err := ex.mark(ctx, *done); err != nil {
			return err
		}
		if ctl.Attempt() <= t.p.FailAttempts && *done == t.p.FailAtStep {
			return fmt.Errorf("injected failure at step %d of attempt %d", *done, ctl.Attempt())
		}
		timer := time.NewTimer(time.Duration(t.p.Interval))
		select {
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		case <-timer.C:
		}
		*done++
		if t.p.CheckpointEvery > 0 && *done%t.p.CheckpointEvery == 0 && *done < t.p.Steps {
			if err := ctl.SaveCheckpoint(ctx, checkpoint{Done: *done}); err != nil {
				return fmt.Errorf("witness: %w", err)
			}
		}
	}
	// The completion is a unit of work like each step, so it too starts at a pause point: that
	// is where a process that lost its membership while frozen or cut off learns it
	// (runner.ErrLeaseLost) instead of completing a run another replica has taken over. A
	// cooperative task makes its externally visible effects the same way (docs/runner.md).
	if err := ctl.Yield(ctx); err != nil {
		return err
	}
	ctl.SetProgress(fmt.Sprintf("%d/%d", t.p.Steps, t.p.Steps))
	return nil
}
