package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/internal/pgtext"
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
			e.key, &CheckpointTooLargeError{Size: size, Limit: MaxCheckpointBytes})
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
		return ErrLeaseLost
	}
	e.touch()
	if !e.pauseReq.Load() {
		return nil
	}
	return e.park(ctx)
}

// park moves a Running task to Paused, frees its slot and blocks until
// ResumeTask re-admits it (or the run is cancelled).
func (e *entry) park(ctx context.Context) error {
	e.mu.Lock()
	if !e.pauseReq.Load() || e.state != StateRunning {
		e.mu.Unlock()
		return nil
	}
	e.pauseReq.Store(false)
	e.releaseSlotLocked()
	e.transitionLocked(StatePaused, ReasonPaused, "paused at a yield point")
	e.mu.Unlock()
	return e.waitRunnable(ctx)
}
