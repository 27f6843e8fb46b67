package engine

import (
	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/runner"
)

// HandOver ends this process's run of key so that another process can continue it: the run is
// cancelled with cause runner.ErrHandedOver, which, like a shutdown for this one run, reports no
// transition and calls no Post, so the record keeps the task as it was (Running, Paused,
// Pending) and its next owner resumes the attempt from the last checkpoint.
//
// It never blocks. It reports done once the run's goroutine has returned, none of the task's
// code runs here any more, and the entry is gone (Snapshot no longer knows the key); until then
// call it again. A task that ignores cancellation is waited for as long as it takes: handing
// it over earlier could run it twice. An unknown key is done.
func (r *Runner) HandOver(key Key) (done bool, err error) {
	r.mu.Lock()
	e, ok := r.entries.Lookup(key)
	r.mu.Unlock()
	if !ok {
		return true, nil
	}
	select {
	case <-e.exited:
		r.mu.Lock()
		if r.entries.Get(key) == e {
			r.entries.Delete(key)
		}
		r.mu.Unlock()
		e.mu.Lock()
		if c := r.counter(e.state); c != nil && e.handedOver {
			c.Add(-1) // the state it was handed over in is no longer held here
			e.state = lifecycle.Stopped
		}
		e.handedOver = true
		e.mu.Unlock()
		return true, nil
	default:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.handedOver {
		if e.state.Terminal() && !e.abandoned {
			// Its end is reported; the goroutine is on its way out (cleanup), nothing to cancel.
			return false, nil
		}
		e.handedOver = true
		e.pauseReq.Store(false)
		e.cancel(runner.ErrHandedOver)
		if e.span != nil {
			e.span.AddEvent(EventHandOver)
		}
		e.signal()
		r.opts.Logger.V(1).Info("handing the run over", "key", key, "task", e.spec.TaskName, "attempt", e.spec.Attempt, "state", e.state)
	}
	return false, nil
}
