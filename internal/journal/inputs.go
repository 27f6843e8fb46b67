package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

// Record queues a transition the controller decided (a retry, a restart while Paused, a stop
// of a task that runs nowhere, a spec that can never run). It fails with ErrUntracked, with
// ErrBacklogFull while too many transitions of the task wait for PostgreSQL, and with
// lifecycle.ErrIllegal for a step the lifecycle does not allow from the projected record.
func (j *Journal) Record(uid string, ev lifecycle.Event) error {
	if ev.At.IsZero() {
		ev.At = j.opts.Clock.Now()
	}
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	switch {
	case !ok:
		j.mu.Unlock()
		return fmt.Errorf("record %s: %w", uid, ErrUntracked)
	case !e.ownership.Writes():
		j.mu.Unlock()
		return nil
	case len(e.events) >= j.opts.MaxBacklog:
		j.mu.Unlock()
		return fmt.Errorf("record %s: %w", uid, ErrBacklogFull)
	}
	err := j.enqueueLocked(e, ev, nil, nil)
	j.reweighLocked(e)
	nn := e.nn
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("record %s of %s: %w", ev.To, uid, err)
	}
	j.queue.Add(uid)
	j.opts.Decide(nn)
	return nil
}

// enqueueLocked checks ev against the projected record and queues it.
func (j *Journal) enqueueLocked(e *entry, ev lifecycle.Event, result json.RawMessage, progress *string) error {
	tr, err := lifecycle.Next(e.projected, ev)
	if err != nil {
		return err
	}
	e.projected = lifecycle.Apply(e.projected, tr)
	e.events = append(e.events, pending{ev: ev, result: result, progress: progress, queuedAt: j.opts.Clock.Now()})
	e.enqueued++
	return nil
}

// Hand notes that this process hands attempt to the runner, started for restartGeneration;
// call it before runner.StartTask (which reports the run's first transition synchronously).
// The adopted checkpoint now belongs to the run.
func (j *Journal) Hand(uid string, attempt int, restartGeneration int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.tasks.Lookup(uid); ok {
		e.handed.attempt, e.handed.restartGeneration = attempt, restartGeneration
		e.adopted = nil
	}
}

// Transition implements engine.Sink: every state change of a run is queued. It is called with
// the runner's lock held, so it only touches memory.
func (j *Journal) Transition(t engine.Transition) {
	uid := string(t.Key)
	ev := lifecycle.Event{To: t.To, Attempt: t.Attempt, Reason: t.Reason, Message: t.Message, At: t.At, Span: t.Span}
	var result json.RawMessage
	if ev.To == lifecycle.Finished {
		result = t.Result
	}
	var progress *string
	if t.Progress != "" {
		p := t.Progress
		progress = &p
	}
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	if !ok {
		j.mu.Unlock()
		j.log.Error(ErrUntracked, "dropping a transition of an untracked task", "uid", uid, "to", t.To)
		return
	}
	if !e.ownership.Writes() {
		j.mu.Unlock()
		return
	}
	if t.Span != "" {
		e.lastSpan = t.Span
	}
	if t.Attempt != e.projected.Attempt && t.Attempt == e.handed.attempt {
		ev.RestartGeneration = e.handed.restartGeneration
	}
	err := j.enqueueLocked(e, ev, result, progress)
	j.reweighLocked(e)
	nn := e.nn
	j.mu.Unlock()
	if err != nil {
		j.log.Error(err, "dropping a run's transition the lifecycle does not allow", "task", nn, "uid", uid, "to", t.To, "attempt", t.Attempt)
		return
	}
	j.queue.Add(uid)
	j.opts.Decide(nn)
}

// SaveCheckpoint implements engine.CheckpointSaver. It queues the checkpoint and returns: it
// is written after the transitions queued before it, and a newer checkpoint replaces one still
// waiting, so a database outage costs one pending checkpoint per task. data was prepared by the
// runner (pgtext.JSON, within the size limit). A checkpoint of an attempt that is no longer the
// task's, or of a task this process no longer owns, is dropped.
func (j *Journal) SaveCheckpoint(_ context.Context, key runner.Key, attempt int, data json.RawMessage) error {
	uid := string(key)
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	if !ok {
		j.mu.Unlock()
		return fmt.Errorf("save checkpoint of %s: %w", uid, ErrUntracked)
	}
	if !e.ownership.Writes() || attempt != e.projected.Attempt {
		j.mu.Unlock()
		return nil
	}
	e.checkpoint = &pendingCheckpoint{attempt: attempt, data: data, after: e.enqueued}
	j.reweighLocked(e)
	j.mu.Unlock()
	j.queue.Add(uid)
	return nil
}

// SetDesired mirrors spec.state into the row's desired_state column (written when it changed).
func (j *Journal) SetDesired(uid string, d lifecycle.Desired) {
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	if !ok || e.desired == d || !e.ownership.Writes() {
		j.mu.Unlock()
		return
	}
	e.desired, e.desiredSince = d, time.Time{}
	if st := e.projected.Status; st != reachedBy(d) && (!st.Terminal() || st == lifecycle.Stopped && d == lifecycle.DesiredRunning) {
		e.desiredSince = j.opts.Clock.Now() // a transition is to follow: measure until it commits
	}
	e.columns.Desired = &d
	j.mu.Unlock()
	j.queue.Add(uid)
}

// SetProgress refreshes the row's progress column between transitions (only the latest value
// waiting is written), so SQL users see a running task move.
func (j *Journal) SetProgress(uid, progress string) {
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	if !ok || progress == "" || !e.ownership.Writes() ||
		(e.projected.Status != lifecycle.Running && e.projected.Status != lifecycle.Paused) ||
		(e.columns.Progress == nil && e.progress == progress) || (e.columns.Progress != nil && *e.columns.Progress == progress) {
		j.mu.Unlock()
		return
	}
	e.columns.Progress = &progress
	j.mu.Unlock()
	j.queue.Add(uid)
}

// Delete soft-deletes the task's row once everything queued before is written. Call it when
// the BackgroundTask is gone and its run is over; Decide is called when it is done.
func (j *Journal) Delete(uid string) {
	j.requestLast(uid, func(e *entry) { e.deleteRequested, e.deleteRefused = true, false })
}

// Release asks for the task's row to be given up once everything queued for it is written
// (transitions, the last checkpoint, progress): the run was handed over (runner.HandOver) and
// another process continues it from this record. View says Released when it is done; from then
// on the journal writes nothing more for the task, and it should be forgotten.
func (j *Journal) Release(uid string) {
	j.requestLast(uid, func(e *entry) { e.releaseRequested = true })
}

// requestLast marks a tracked task for a write that comes after everything queued for it (the
// writers' next picks it last) and queues the task.
func (j *Journal) requestLast(uid string, mark func(*entry)) {
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	if ok {
		mark(e)
	}
	j.mu.Unlock()
	if ok {
		j.queue.Add(uid)
	}
}
