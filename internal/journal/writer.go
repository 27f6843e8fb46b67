package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/store"
)

// Start runs the writers until ctx is done (manager.Runnable). On shutdown the backlog is
// flushed for up to FlushTimeout (stop the runner first: then it only shrinks); what cannot be
// written by then is lost with the process, and the next owner resumes from the last committed
// record.
func (j *Journal) Start(ctx context.Context) error {
	j.log.Info("starting journal writers", "writers", j.opts.Writers, "maxBatch", j.opts.MaxBatch)
	writeCtx, cancelWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWrites()
	stopBatches := make(chan struct{})
	var batchers, writers sync.WaitGroup
	for range j.batchLoops() {
		batchers.Go(func() { j.recordBatches(writeCtx, stopBatches) })
	}
	for range j.opts.Writers {
		writers.Go(func() {
			for j.writeNext(writeCtx) {
			}
		})
	}
	<-ctx.Done()
	if !j.flush(j.opts.FlushTimeout) {
		j.log.Info("shutdown: giving up on the journal backlog", "unwritten", j.Backlog())
		cancelWrites() // what is in flight fails at once
	}
	j.queue.ShutDown()
	writers.Wait()
	close(stopBatches) // after the writers: none of them waits to hand a transition over
	batchers.Wait()
	return nil
}

// flush waits until nothing is left to write, or timeout. It looks at the tasks, not at the
// queue: a task handed to the batch writers, or waiting out a retry's delay, is in neither the
// queue's length nor (ShutDownWithDrain) its processing set for good, and a shut-down queue
// takes no task back for its next write.
func (j *Journal) flush(timeout time.Duration) bool {
	// A task waiting out a retry's delay (a longer one after many failures) is taken now: the
	// delay is for a database that is down, and it may be back.
	for _, uid := range j.withWrites() {
		j.queue.Add(uid)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for j.unwritten() {
		select {
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}

// withWrites lists the tasks with something left to write.
func (j *Journal) withWrites() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	j.tasks.Range(func(uid string, e *entry) bool {
		if e.hasWrites() {
			out = append(out, uid)
		}
		return true
	})
	return out
}

// unwritten reports whether a task this process still writes for has anything left to write.
func (j *Journal) unwritten() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	left := false
	j.tasks.Range(func(_ string, e *entry) bool {
		left = e.hasWrites()
		return !left
	})
	return left
}

// item is one write: exactly one field is set.
type item struct {
	transition *store.TransitionWrite
	pending    *pending
	checkpoint *pendingCheckpoint
	columns    *store.ColumnUpdate
	delete     bool
	release    bool
}

func (it item) kind() string {
	switch {
	case it.transition != nil:
		return kindTransition
	case it.checkpoint != nil:
		return kindCheckpoint
	case it.columns != nil:
		return kindColumns
	case it.release:
		return kindRelease
	}
	return kindDelete
}

// The kinds of write, as taskpilot_rejected_writes_total labels them.
const (
	kindTransition = "transition"
	kindCheckpoint = "checkpoint"
	kindColumns    = "columns"
	kindRelease    = "release"
	kindDelete     = "delete"
)

// writeKinds are every kind of write.
func writeKinds() []string {
	return []string{kindTransition, kindCheckpoint, kindColumns, kindRelease, kindDelete}
}

// writeNext takes the next task from the queue and writes its next item: a transition is
// handed to the batch writers (recordBatches) and this writer moves on to the next task, any
// other item is written here. Once written, the task goes back to the end of the queue if it
// has more: tasks are served round-robin, so no task can hold a writer. It returns false when
// the queue is shut down.
func (j *Journal) writeNext(ctx context.Context) bool {
	uid, shutdown := j.queue.Get()
	if shutdown {
		return false
	}
	it, ok := j.next(uid)
	switch {
	case !ok:
		j.queue.Forget(uid)
		j.queue.Done(uid)
	case it.transition != nil:
		j.transitions <- queuedTransition{uid: uid, it: it} // blocks while the batch writers are full
	default:
		j.finish(ctx, uid, it, j.write(ctx, uid, it))
	}
	return true
}

// finish applies the outcome of the task's write and hands the task back to the queue: again
// at its end when it has more to write, later when the write failed for the moment.
func (j *Journal) finish(ctx context.Context, uid string, it item, err error) {
	defer j.queue.Done(uid)
	if err != nil && ctx.Err() != nil {
		return // shutting down: the write was cut short, not refused
	}
	switch more := j.resolve(uid, it, err); {
	case err != nil && store.IsTransient(err):
		j.queue.AddRateLimited(uid)
	case more:
		j.queue.Forget(uid)
		j.queue.Add(uid)
	default:
		j.queue.Forget(uid)
	}
}

// next picks the task's next write: a checkpoint once the transitions queued before it are
// written, else the oldest transition (computed now, from the committed record), else the
// column slots, else the soft delete, else the release.
func (j *Journal) next(uid string) (item, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.tasks.Lookup(uid)
	if !ok || !e.ownership.Writes() {
		return item{}, false
	}
	defer j.reweighLocked(e) // a queued transition that no longer applies may be dropped
	for {
		switch {
		case e.checkpoint != nil && e.checkpoint.after <= e.resolved:
			return item{checkpoint: e.checkpoint}, true
		case len(e.events) > 0:
			p := &e.events[0]
			tr, err := lifecycle.Next(e.committed, p.ev)
			if err != nil {
				// Only after an earlier write was dropped can an event stop applying.
				j.log.Error(err, "dropping a queued transition that no longer applies", "task", e.nn, "to", p.ev.To)
				e.events = e.events[1:]
				e.resolved++
				e.reproject(j.log)
				continue
			}
			w := store.TransitionWrite{UID: uid, Owner: j.opts.Owner(), Prev: e.committed, Transition: tr, Result: p.result, Progress: p.progress, Span: p.ev.Span}
			return item{transition: &w, pending: p}, true
		case e.columns.Progress != nil || e.columns.Desired != nil:
			cols := e.columns
			return item{columns: &cols}, true
		case e.deleteRequested:
			return item{delete: true}, true
		case e.releaseRequested:
			return item{release: true}, true
		}
		return item{}, false
	}
}

func (j *Journal) write(ctx context.Context, uid string, it item) error {
	ctx, cancel := context.WithTimeout(ctx, j.opts.WriteTimeout)
	defer cancel()
	owner := j.opts.Owner()
	switch {
	case it.checkpoint != nil:
		return j.opts.Store.SaveCheckpoint(ctx, uid, owner, it.checkpoint.attempt, it.checkpoint.data)
	case it.columns != nil:
		return j.opts.Store.UpdateColumns(ctx, uid, owner, *it.columns)
	case it.delete:
		return j.opts.Store.MarkDeleted(ctx, uid)
	case it.release:
		return j.opts.Store.Release(ctx, uid, owner)
	}
	return fmt.Errorf("empty journal item for %s", uid)
}

// resolve applies the outcome of a write and reports whether the task has more to write.
func (j *Journal) resolve(uid string, it item, err error) bool {
	var decide, report bool
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	if !ok {
		j.mu.Unlock()
		return false
	}
	nn := e.nn
	switch {
	case err == nil:
		decide, report = j.succeededLocked(e, it)
	case errors.Is(err, store.ErrFenced):
		var owned *store.OwnedError
		holder := store.Owner{}
		if errors.As(err, &owned) {
			holder = owned.Owner
		}
		j.log.Error(err, "another operator owns this task now; dropping what this one had not written and stopping its run",
			"task", nn, "uid", uid, "owner", holder.Name, "ownerEpoch", holder.Epoch)
		e.ownership, e.fencedBy = Fenced, holder
		e.dropAll()
		j.opts.Metrics.fencedTask()
		decide, report = true, true
	case errors.Is(err, store.ErrDeleted):
		e.ownership = Deleted
		e.dropAll()
		decide = true
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		j.log.Error(err, "the row is not what this process believes; re-adopting it from the row", "task", nn, "uid", uid)
		e.ownership = Stale
		e.dropAll()
		decide = true
	case store.IsTransient(err):
		report = e.problem.Reason != ReasonDatabaseUnreachable
		e.problem = Problem{Reason: ReasonDatabaseUnreachable,
			Message: fmt.Sprintf("%d transition(s) waiting for PostgreSQL, retrying: %v", len(e.events), err)}
		j.log.V(1).Info("database write failed, will retry", "task", nn, "error", err.Error())
	default:
		decide, report = j.rejectedLocked(e, it, err), true
	}
	j.reweighLocked(e)
	more := e.hasWrites()
	j.mu.Unlock()
	if decide {
		j.opts.Decide(nn)
	}
	if report {
		j.opts.Report(nn)
	}
	return more
}

// succeededLocked records a successful write; it says whom to wake.
func (j *Journal) succeededLocked(e *entry, it item) (decide, report bool) {
	if e.problem.Reason == ReasonDatabaseUnreachable {
		e.problem, report = Problem{}, true
	}
	switch {
	case it.transition != nil:
		tr, prev := it.transition.Transition, e.committed
		e.committed = lifecycle.Apply(prev, tr)
		e.changedAt = tr.At
		wasFull := len(e.events) >= j.opts.MaxBacklog
		e.events = e.events[1:]
		e.resolved++
		e.result = nil
		if tr.To == lifecycle.Finished {
			e.result = boundResult(it.pending.result)
		}
		switch {
		case it.pending.progress != nil:
			e.progress = *it.pending.progress
		case lifecycle.NewAttempt(prev, tr):
			e.progress = ""
		}
		if e.problem.Reason == ReasonRecordRejected && !it.pending.substituted {
			e.problem = Problem{}
		}
		e.announce(Announcement{From: tr.From, To: tr.To, Attempt: tr.Attempt, Reason: tr.Reason, Message: tr.Message,
			Warning: it.pending.substituted})
		j.opts.Metrics.committed(tr.From, tr.To, tr.Reason, j.opts.Clock.Since(tr.At))
		j.desiredCommittedLocked(e, prev, tr)
		return wasFull, true
	case it.checkpoint != nil:
		if e.checkpoint == it.checkpoint {
			e.checkpoint = nil
		}
	case it.columns != nil:
		if p := it.columns.Progress; p != nil {
			e.progress = *p
			if e.columns.Progress == p {
				e.columns.Progress = nil
			}
		}
		if e.columns.Desired == it.columns.Desired {
			e.columns.Desired = nil
		}
	case it.delete:
		e.ownership, e.deleteRequested = Deleted, false
		return true, report
	case it.release:
		e.ownership, e.releaseRequested = Released, false
		return true, report
	}
	return false, report
}

// desiredCommittedLocked measures the operator's share of a pause, resume or stop: from the
// change of spec.state (SetDesired) to the commit of the transition that reaches it. A run that
// ends another way first, or a new attempt, is not counted.
func (j *Journal) desiredCommittedLocked(e *entry, prev lifecycle.Record, tr lifecycle.Transition) {
	if e.desiredSince.IsZero() {
		return
	}
	switch {
	case tr.To == reachedBy(e.desired) && !lifecycle.NewAttempt(prev, tr):
		j.opts.Metrics.desiredReached(e.desired, j.opts.Clock.Since(e.desiredSince))
		e.desiredSince = time.Time{}
	case tr.To.Terminal(), lifecycle.NewAttempt(prev, tr):
		e.desiredSince = time.Time{}
	}
}

// reachedBy is the status in which a task is what d asks for.
func reachedBy(d lifecycle.Desired) lifecycle.Status {
	switch d {
	case lifecycle.DesiredPaused:
		return lifecycle.Paused
	case lifecycle.DesiredStopped:
		return lifecycle.Stopped
	case lifecycle.DesiredRunning:
	}
	return lifecycle.Running
}

// rejectedLocked handles a write PostgreSQL refused for good. A transition is retried once
// with what it carries stripped (a terminal one becomes Failed, reason RecordRejected, since
// its outcome cannot be stored); if that is refused too it is dropped. A checkpoint or column
// update is dropped. Either way later writes proceed, and the user is told.
func (j *Journal) rejectedLocked(e *entry, it item, err error) bool {
	kind := it.kind()
	j.opts.Metrics.rejectedWrite(kind)
	msg := fmt.Sprintf("PostgreSQL rejected a %s write: %v", kind, err)
	e.problem = Problem{Reason: ReasonRecordRejected, Message: msg}
	j.log.Error(err, "PostgreSQL rejected a write for good; later writes proceed", "task", e.nn, "kind", kind)
	switch {
	case it.transition != nil:
		p := &e.events[0]
		if !p.substituted {
			p.substituted = true
			p.result, p.progress = nil, nil
			if p.ev.To.Terminal() {
				p.ev.To, p.ev.Reason = lifecycle.Failed, lifecycle.ReasonRecordRejected
			}
			p.ev.Message = fmt.Sprintf("the transition to %s could not be recorded: %v", it.transition.Transition.To, err)
			e.reproject(j.log)
			return true
		}
		e.events = e.events[1:]
		e.resolved++
		e.reproject(j.log)
		e.announce(Announcement{From: e.committed.Status, To: e.committed.Status, Attempt: e.committed.Attempt,
			Reason: lifecycle.ReasonRecordRejected, Message: msg, Warning: true})
		return true
	case it.checkpoint != nil:
		if e.checkpoint == it.checkpoint {
			e.checkpoint = nil
		}
	case it.columns != nil:
		e.columns = store.ColumnUpdate{}
	case it.delete:
		// The object is gone, so no watch event will come: wake the controller, which stops
		// tracking the task and leaves the row to the sweep.
		e.deleteRequested, e.deleteRefused = false, true
		e.announce(Announcement{From: e.committed.Status, To: e.committed.Status, Attempt: e.committed.Attempt,
			Reason: lifecycle.ReasonRecordRejected, Message: msg, Warning: true})
		return true
	case it.release:
		e.releaseRequested = false
	}
	e.announce(Announcement{From: e.committed.Status, To: e.committed.Status, Attempt: e.committed.Attempt,
		Reason: lifecycle.ReasonRecordRejected, Message: msg, Warning: true})
	return false
}

// hasWrites reports whether the task has anything left to write, and may still write it.
func (e *entry) hasWrites() bool {
	return e.ownership.Writes() &&
		(len(e.events) > 0 || e.checkpoint != nil || e.columns.Progress != nil || e.columns.Desired != nil || e.deleteRequested ||
			e.releaseRequested)
}

// dropAll forgets every unwritten change (the task is fenced, stale or deleted).
func (e *entry) dropAll() {
	e.events, e.checkpoint, e.columns, e.deleteRequested, e.releaseRequested = nil, nil, store.ColumnUpdate{}, false, false
	e.projected = e.committed
}
