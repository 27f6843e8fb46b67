package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/pgtext"
	"github.com/taskpilot/taskpilot/runner"
)

// entry implements Control: the task's handle is the run itself, which saves
// an allocation per task and keeps Yield's fast path to two loads.
var _ Control = (*entry)(nil)

func (e *entry) Key() Key { return e.key }

func (e *entry) Attempt() int { return e.spec.Attempt }

func (e *entry) Deadline() (time.Time, bool) {
	if e.spec.Timeout <= 0 {
		return time.Time{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	used := e.runTime
	now := time.Now()
	if !e.segStart.IsZero() {
		used += now.Sub(e.segStart)
	}
	return now.Add(e.spec.Timeout - used), true
}

func (e *entry) Heartbeat() { e.touch() }

func (e *entry) Logger() logr.Logger { return e.log }

func (e *entry) Labels() map[string]string { return e.spec.Labels }

func (e *entry) Annotations() map[string]string { return e.spec.Annotations }

func (e *entry) IdempotencyKey(step string) string {
	return runner.IdempotencyKey(e.key, e.spec.Attempt, step)
}

func (e *entry) SetProgress(p string) {
	e.touch()
	p = pgtext.Text(p, MaxProgressLen)
	e.mu.Lock()
	e.progress = p
	e.mu.Unlock()
}

func (e *entry) SaveCheckpoint(ctx context.Context, v any) error {
	e.touch()
	encoded, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode checkpoint for task %q: %w", e.key, err)
	}
	data, size, err := pgtext.JSON(encoded)
	if err != nil {
		return fmt.Errorf("encode checkpoint for task %q: %w", e.key, err)
	}
	if size > MaxCheckpointBytes {
		return fmt.Errorf("save checkpoint for task %q: %w",
			e.key, &runner.CheckpointTooLargeError{Size: size, Limit: MaxCheckpointBytes})
	}
	// A goroutine abandoned after StopGrace must not overwrite the
	// checkpoint of whatever runs next for this key.
	if e.isTerminal() {
		return fmt.Errorf("save checkpoint for task %q: %w", e.key, ErrTerminal)
	}
	if s := e.r.opts.Checkpoints; s != nil {
		// No lock held: the saver does database I/O.
		if err := s.SaveCheckpoint(ctx, e.key, e.spec.Attempt, data); err != nil {
			return fmt.Errorf("save checkpoint for task %q: %w", e.key, err)
		}
	}
	e.mu.Lock()
	e.checkpoint = data
	e.mu.Unlock()
	if e.span != nil {
		e.span.AddEvent(EventCheckpoint, trace.WithAttributes(attribute.Int("bytes", size)))
	}
	return nil
}

func (e *entry) LoadCheckpoint(v any) (bool, error) {
	e.mu.Lock()
	data := e.checkpoint
	e.mu.Unlock()
	if len(data) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("decode checkpoint for task %q: %w", e.key, err)
	}
	return true, nil
}

func (e *entry) Yield(ctx context.Context) error {
	if e.ctx.Err() != nil {
		return context.Cause(e.ctx)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if !e.r.leaseValid() {
		return runner.ErrLeaseLost
	}
	e.touch()
	if !e.pauseReq.Load() {
		return nil
	}
	return e.park(ctx)
}

// Sleep waits d at a pause point: a pause requested meanwhile parks the run at once (the rest of
// d is waited once it resumes), and a cancellation returns its cause without waiting d out.
func (e *entry) Sleep(ctx context.Context, d time.Duration) error {
	for {
		if err := e.Yield(ctx); err != nil {
			return err
		}
		if d <= 0 {
			return nil
		}
		start := time.Now()
		t := time.NewTimer(d)
		select {
		case <-t.C:
			d = 0 // the Yield at the top of the loop notices a cancellation that raced the timer
		case <-e.wake: // a pause (or another wake-up): Yield parks, then the rest is waited
			t.Stop()
			d -= time.Since(start)
		case <-e.ctx.Done():
			t.Stop()
			return context.Cause(e.ctx)
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}

// park moves a Running task to Paused, frees its slot and blocks until
// ResumeTask re-admits it (or the run is cancelled).
func (e *entry) park(ctx context.Context) error {
	e.mu.Lock()
	if !e.pauseReq.Load() || e.state != lifecycle.Running {
		e.mu.Unlock()
		return nil
	}
	e.pauseReq.Store(false)
	e.releaseSlotLocked()
	e.transitionLocked(lifecycle.Paused, lifecycle.ReasonPaused, "paused at a yield point")
	e.mu.Unlock()
	return e.waitRunnable(ctx)
}
