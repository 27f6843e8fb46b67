package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskpilot/taskpilot/store"
)

// Start runs the writers until ctx is done (manager.Runnable). Each task is drained by one
// writer at a time, in order; a failed write is retried with exponential backoff (100ms..10s)
// without blocking other tasks. On shutdown the backlog is flushed for up to FlushTimeout (the
// runner reports nothing while shutting down, so the backlog only shrinks); what cannot be
// written by then is lost with the process, and the next leader resumes from the last recorded
// state.
func (j *Journal) Start(ctx context.Context) error {
	j.log.Info("starting journal writers", "writers", j.opts.Writers)
	writeCtx, cancelWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWrites()
	var wg sync.WaitGroup
	for range j.opts.Writers {
		wg.Go(func() {
			for j.writeNext(writeCtx) {
			}
		})
	}
	<-ctx.Done()
	drained := make(chan struct{})
	go func() {
		j.queue.ShutDownWithDrain()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(j.opts.FlushTimeout):
		j.log.Info("shutdown: giving up on the journal backlog", "unwritten", j.Backlog())
		cancelWrites()
		j.queue.ShutDown()
	}
	wg.Wait()
	<-drained
	return nil
}

// writeNext drains the outbox of one task. It returns false when the queue is shut down.
func (j *Journal) writeNext(ctx context.Context) bool {
	uid, shutdown := j.queue.Get()
	if shutdown {
		return false
	}
	defer j.queue.Done(uid)
	for {
		j.mu.Lock()
		e, ok := j.tasks[uid]
		if !ok || len(e.outbox) == 0 || e.state.Fenced {
			j.mu.Unlock()
			j.queue.Forget(uid)
			return true
		}
		item := e.outbox[0]
		j.mu.Unlock()

		err := j.write(ctx, uid, item)
		if err != nil {
			j.failed(uid, err)
			return true
		}
		j.succeeded(uid, item)
	}
}

func (j *Journal) write(ctx context.Context, uid string, item outboxItem) error {
	ctx, cancel := context.WithTimeout(ctx, j.opts.WriteTimeout)
	defer cancel()
	switch {
	case item.transition != nil:
		return j.opts.Store.RecordTransition(ctx, *item.transition)
	case item.checkpoint != nil:
		err := j.opts.Store.SaveCheckpoint(ctx, uid, item.checkpoint.attempt, item.checkpoint.data)
		if errors.Is(err, store.ErrStaleTransition) {
			// The row moved on to a newer attempt: this checkpoint is obsolete, not a fence.
			return nil
		}
		return err
	case item.markDelete:
		return j.opts.Store.MarkDeleted(ctx, uid)
	case item.update != nil:
		return j.opts.Store.UpdateTask(ctx, uid, *item.update)
	}
	return fmt.Errorf("empty outbox item for %s", uid)
}

func (j *Journal) succeeded(uid string, item outboxItem) {
	now := j.opts.Clock.Now()
	j.mu.Lock()
	e, ok := j.tasks[uid]
	if !ok {
		j.mu.Unlock()
		return
	}
	e.outbox = e.outbox[1:]
	if len(e.outbox) == 0 {
		e.outbox = nil // let a drained backlog's array be collected
	}
	wasFailing := e.state.WriteError != ""
	e.state.WriteError = ""
	e.state.Backlog = len(e.outbox)
	if item.markDelete {
		e.state.Deleted = true
	}
	nn := e.state.NamespacedName
	j.mu.Unlock()

	if item.transition != nil {
		j.opts.Metrics.recorded(now.Sub(item.transition.At))
	}
	if wasFailing || item.markDelete {
		j.opts.Notify(nn) // flip the Recorded condition back, or let the finalizer finish
	}
}

func (j *Journal) failed(uid string, err error) {
	stale := errors.Is(err, store.ErrStaleTransition)
	j.mu.Lock()
	e, ok := j.tasks[uid]
	if !ok {
		j.mu.Unlock()
		return
	}
	wasFailing := e.state.WriteError != ""
	e.state.WriteError = err.Error()
	if stale {
		// Another writer recorded a transition this process did not: it is no longer the owner.
		// Drop the backlog (writing it would overwrite the newer owner's record) and let the
		// reconciler stop the local run.
		e.state.Fenced = true
		e.outbox = nil
		e.state.Backlog = 0
	}
	nn := e.state.NamespacedName
	j.mu.Unlock()

	switch {
	case stale:
		j.log.Error(err, "transition rejected as stale: another operator owns this task; stopping the local run", "task", nn, "uid", uid)
		j.queue.Forget(uid)
	case store.IsTransient(err):
		j.log.V(1).Info("database write failed, will retry", "task", nn, "error", err.Error())
		j.queue.AddRateLimited(uid)
	default:
		j.log.Error(err, "database write failed with a permanent error, will retry", "task", nn, "uid", uid)
		j.queue.AddRateLimited(uid)
	}
	if !wasFailing || stale {
		j.opts.Notify(nn)
	}
}
