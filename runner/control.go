package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/taskpilot/taskpilot/api/lifecycle"
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

func (e *entry) Logger() logr.Logger { return e.log }

func (e *entry) Labels() map[string]string { return e.spec.Labels }

func (e *entry) Annotations() map[string]string { return e.spec.Annotations }

func (e *entry) IdempotencyKey(step string) string {
	return IdempotencyKey(e.key, e.spec.Attempt, step)
}

// IdempotencyKey is Control.IdempotencyKey for a task's key (its UID) and attempt: "tp-" and
// 32 hex digits of a SHA-256 over the three, short enough for any API's idempotency header.
func IdempotencyKey(key Key, attempt int, step string) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%s", key, attempt, step))
	return "tp-" + hex.EncodeToString(sum[:16])
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
