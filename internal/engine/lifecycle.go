package engine

import (
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/runner"
)

// StartTask admits a new run for key.
//
// The task is built synchronously with Registry.New, so runner.ErrUnknownTaskType
// and runner.ErrInvalidParams come back from this call and no transition is
// reported. A key whose current run is not terminal gives ErrAlreadyActive;
// a terminal entry is replaced by the new run (a new attempt).
//
// Reported transitions: ""->Running (Started) when a slot is free right now,
// otherwise ""->Pending (Queued) and later Pending->Running (Started).
func (r *Runner) StartTask(key Key, spec StartSpec) error {
	r.mu.Lock()
	err := r.phaseErrLocked()
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start task %q: %w", key, err)
	}
	task, err := r.opts.Registry.Build(spec.TaskName, spec.Params)
	if err != nil {
		return fmt.Errorf("start task %q: %w", key, err)
	}
	cost := memoryOf(task)
	if r.opts.MemoryBudget > 0 && cost > r.opts.MemoryBudget {
		return fmt.Errorf("start task %q: %w", key, &runner.ParamsError{TaskName: spec.TaskName,
			Err: fmt.Errorf("a run needs %s of memory, more than the operator's whole budget of %s", bytesText(cost), bytesText(r.opts.MemoryBudget))})
	}
	return r.launch(key, spec, task, cost)
}

// memoryOf is what a run of task reserves from the memory budget.
func memoryOf(task Task) int64 {
	if s, ok := task.(runner.Sized); ok {
		return max(s.MemoryBytes(), 1)
	}
	return DefaultTaskMemory
}

func (r *Runner) launch(key Key, spec StartSpec, task Task, cost int64) error {
	r.mu.Lock()
	if err := r.phaseErrLocked(); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("start task %q: %w", key, err)
	}
	if old, ok := r.entries.Lookup(key); ok {
		switch {
		case !old.isTerminal():
			r.mu.Unlock()
			return fmt.Errorf("start task %q: %w", key, ErrAlreadyActive)
		case !old.returned():
			r.mu.Unlock()
			return fmt.Errorf("start task %q: %w", key, ErrStillRunning)
		}
	}
	e := newEntry(r, key, spec, task)
	e.cost = cost
	// Lock e before publishing it so no other call can observe it before
	// its first transition has been reported.
	e.mu.Lock()
	r.entries.Set(key, e)
	r.mu.Unlock()

	e.admitLocked(lifecycle.ReasonStarted)
	e.mu.Unlock()
	r.spawn(e)
	return nil
}

// PauseTask asks a run to pause. Pause is cooperative: a Running task moves
// to Paused (and the transition is reported) when it next calls Yield; until
// then Snapshot shows PauseRequested. A Pending task leaves the queue and is
// Paused immediately. Paused, or a run already being stopped: no-op.
// Terminal: ErrTerminal. Unknown key: ErrNotFound.
func (r *Runner) PauseTask(key Key) error {
	e, err := r.lookup(key)
	if err != nil {
		return fmt.Errorf("pause task: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.state.Terminal():
		return fmt.Errorf("pause task %q in state %s: %w", key, e.state, ErrTerminal)
	case e.stopReq:
		return nil
	case e.state == lifecycle.Pending:
		e.withdrawLocked()
		e.transitionLocked(lifecycle.Paused, lifecycle.ReasonPaused, "paused while waiting for a slot")
		e.signal()
	case e.state == lifecycle.Running:
		e.pauseReq.Store(true)
	}
	return nil
}

// ResumeTask continues a Paused run from where it parked (the same Run call
// returns from Yield). It needs a slot again: Paused->Running (Resumed) when
// one is free, else Paused->Pending (Queued) and FIFO like any new task.
// Running with a pause still requested: the request is withdrawn, nothing is
// reported. Running/Pending otherwise, or a run being stopped: no-op.
// Terminal: ErrTerminal. Unknown key: ErrNotFound.
func (r *Runner) ResumeTask(key Key) error {
	e, err := r.lookup(key)
	if err != nil {
		return fmt.Errorf("resume task: %w", err)
	}
	e.mu.Lock()
	switch {
	case e.state.Terminal():
		st := e.state
		e.mu.Unlock()
		return fmt.Errorf("resume task %q in state %s: %w", key, st, ErrTerminal)
	case e.stopReq:
		e.mu.Unlock()
		return nil
	case e.state == lifecycle.Running:
		e.pauseReq.Store(false)
		e.mu.Unlock()
		return nil
	case e.state == lifecycle.Paused:
		e.admitLocked(lifecycle.ReasonResumed)
		e.signal()
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	return nil
}

// StopTask cancels the run with cause runner.ErrStopped; the task unwinds, Post
// runs and the run ends Stopped, whatever Run returned. A Paused task is
// unblocked (Yield returns runner.ErrStopped); a Pending task that never reached Pre
// ends Stopped without calling Pre/Post. If the task
// ignores cancellation, after StopGrace it is reported Stopped anyway with
// reason StopGraceExceeded, its slot is freed and its goroutine is counted in
// Stats.Abandoned until it returns (shutdown still waits for it, bounded).
// Already terminal or already stopping: no-op nil. Unknown key: ErrNotFound.
func (r *Runner) StopTask(key Key) error {
	return r.StopTaskBecause(key, lifecycle.ReasonStopped, "stopped by request")
}

// StopTaskBecause is StopTask with the reason and message its Stopped transition carries (for
// example lifecycle.ReasonPauseTimeout).
func (r *Runner) StopTaskBecause(key Key, reason, message string) error {
	e, err := r.lookup(key)
	if err != nil {
		return fmt.Errorf("stop task: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Terminal() || e.stopReq {
		return nil
	}
	e.stopReq = true
	e.stopReason, e.stopMessage = reason, message
	e.pauseReq.Store(false)
	e.cancel(runner.ErrStopped)
	e.grace = time.AfterFunc(r.opts.StopGrace, e.graceExceeded)
	return nil
}

// deadlineExceeded cancels a run whose running time reached its timeout. A task that ignores the
// cancellation for longer than the stop grace is abandoned: reported Failed (DeadlineExceeded),
// its slot freed for others, its goroutine counted in Stats.Abandoned until it returns (Go
// cannot kill it).
func (e *entry) deadlineExceeded() {
	e.cancel(runner.ErrDeadlineExceeded)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Terminal() || e.grace != nil {
		return
	}
	e.grace = time.AfterFunc(e.r.opts.StopGrace, e.deadlineGraceExceeded)
}

// deadlineGraceExceeded reports a timed-out task that did not return in time.
func (e *entry) deadlineGraceExceeded() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Terminal() {
		return
	}
	e.withdrawLocked()
	e.releaseSlotLocked() // its memory stays reserved: the goroutine still runs
	e.abandoned = true
	e.r.abandoned.Add(1)
	msg := fmt.Sprintf("running time exceeded the %s timeout and the task ignored cancellation for the %s stop grace: "+
		"abandoned, its goroutine still running (Go cannot stop it)", e.spec.Timeout, e.r.opts.StopGrace)
	e.r.opts.Logger.Info("task ignored its timeout; abandoned", "key", e.key, "task", e.spec.TaskName, "stopGrace", e.r.opts.StopGrace)
	e.transitionLocked(lifecycle.Failed, lifecycle.ReasonDeadlineExceeded, msg)
}

// graceExceeded reports a stopped task that did not return in time.
func (e *entry) graceExceeded() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Terminal() {
		return
	}
	e.withdrawLocked()
	e.releaseSlotLocked() // its memory stays reserved: the goroutine still runs
	e.abandoned = true
	e.r.abandoned.Add(1)
	msg := fmt.Sprintf("task did not return within the %s stop grace after cancellation; "+
		"reported Stopped while its goroutine is still running", e.r.opts.StopGrace)
	e.r.opts.Logger.Info("task ignored stop", "key", e.key, "task", e.spec.TaskName, "stopGrace", e.r.opts.StopGrace)
	e.transitionLocked(lifecycle.Stopped, lifecycle.ReasonStopGraceExceeded, msg)
}
