package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/pgtext"
	"github.com/taskpilot/taskpilot/runner"
)

// StartSpec describes one run (attempt) of a task.
type StartSpec struct {
	TaskName string
	Params   json.RawMessage
	// Attempt is chosen by the caller: the controller owns the retry policy,
	// the runner only carries the number through to Control and transitions.
	Attempt int
	// Timeout bounds the attempt's RUNNING time; 0 means none. Time spent
	// Paused or Pending does not count, so a task paused overnight is not
	// failed on resume. Exceeding it cancels the run with cause
	// runner.ErrDeadlineExceeded and ends it Failed (reason DeadlineExceeded).
	Timeout time.Duration
	// Checkpoint is the initial checkpoint to resume from (nil = scratch).
	Checkpoint json.RawMessage
	// Namespace and Name name the BackgroundTask (for the run's logger).
	Namespace, Name string
	// Labels and Annotations are the BackgroundTask's (Control.Labels, Control.Annotations).
	Labels, Annotations map[string]string
	// Items is where the run's items live, for a task type with items (runner.RegisterItems);
	// nil for a BackgroundTask without spec.items.
	Items runner.ItemSource
	// Parent is the span of whoever created the task (its traceparent annotation): the
	// execution's span is its child. Previous is the span of the task's earlier execution (on
	// this process or another), which the new span links to. Both are ignored without
	// Options.Tracer.
	Parent, Previous trace.SpanContext
}

// entry is one run of one key: the state machine plus the Control handle the
// task gets. The run goroutine drives it; Runner methods poke it under mu.
// Every state change goes through transitionLocked, which is what makes Sink
// delivery ordered, exactly-once and never concurrent for a key.
type entry struct {
	r      *Runner
	key    Key
	spec   StartSpec
	task   Task
	ctx    context.Context // run context; cause runner.ErrStopped/runner.ErrDeadlineExceeded/runner.ErrShutdown/runner.ErrLeaseLost/runner.ErrHandedOver
	cancel context.CancelCauseFunc
	log    logr.Logger
	// span is the execution's span (nil when not tracing) and traceParent its W3C form, reported
	// with every transition so the row remembers which execution made it.
	span        trace.Span
	traceParent string
	spanEnded   bool // under mu

	// pauseReq is read lock-free by Yield's fast path, so a task that is not
	// being paused pays one atomic load per Yield.
	pauseReq atomic.Bool
	// wake nudges the run goroutine parked in waitRunnable after the state
	// was changed under mu (buffered, 1 token is enough: it re-reads state).
	wake chan struct{}
	// terminal is closed once the terminal transition was reported.
	terminal chan struct{}
	// exited is closed once the run goroutine returned: none of the task's code runs any more.
	exited chan struct{}

	mu         sync.Mutex
	state      lifecycle.Status
	reason     string
	message    string
	progress   string
	startedAt  time.Time
	result     json.RawMessage
	checkpoint json.RawMessage
	stopReq    bool
	handedOver bool    // HandOver was called: nothing more is reported
	abandoned  bool    // reported Stopped by the grace timer, goroutine still out
	waiter     *waiter // the claim waited for: memory first (once), then a slot
	forMemory  bool    // waiter is a memory claim
	holdsSlot  bool
	holdsMem   bool  // the run's memory is reserved (from admission to its end)
	cost       int64 // bytes the run reserves from Options.MemoryBudget
	// stopReason and stopMessage explain a requested stop in its Stopped transition.
	stopReason, stopMessage string
	// items are the counts the run last reported (runner.ItemsHost.ReportItems); nil before.
	items atomic.Pointer[runner.ItemCounts]
	// activity is when the run last showed a sign of life (a pause point, progress, a
	// checkpoint, a heartbeat), in nanoseconds since the runner's epoch.
	activity atomic.Int64
	runTime  time.Duration // running time of finished Running segments
	segStart time.Time     // start of the current Running segment
	deadline *time.Timer
	grace    *time.Timer
}

func newEntry(r *Runner, key Key, spec StartSpec, task Task) *entry {
	log := lazyLogger(r.opts.Logger, "namespace", spec.Namespace, "name", spec.Name, "uid", key,
		"taskType", spec.TaskName, "attempt", spec.Attempt)
	ctx, span, traceParent := r.startSpan(logr.NewContext(r.base, log), key, spec)
	ctx, cancel := context.WithCancelCause(ctx)
	e := &entry{
		span:        span,
		traceParent: traceParent,
		log:         log,
		r:           r,
		key:         key,
		spec:        spec,
		task:        task,
		ctx:         ctx,
		cancel:      cancel,
		wake:        make(chan struct{}, 1),
		terminal:    make(chan struct{}),
		exited:      make(chan struct{}),
	}
	if len(spec.Checkpoint) > 0 {
		e.checkpoint = append(json.RawMessage(nil), spec.Checkpoint...)
	}
	// Spec params are not needed after the factory ran; drop them so an idle
	// entry does not pin a possibly large blob.
	e.spec.Params, e.spec.Checkpoint = nil, nil
	return e
}

// transitionLocked changes state, keeps the gauges and the timeout clock in
// step, and reports to the Sink. Reporting under e.mu is what serialises
// delivery per key. During shutdown nothing is reported (see Runner.Start).
func (e *entry) transitionLocked(to lifecycle.Status, reason, msg string) {
	from := e.state
	now := e.r.opts.Clock()
	if from == lifecycle.Running {
		e.stopClockLocked()
	}
	msg = pgtext.Text(msg, lifecycle.MaxMessageChars)
	e.state, e.reason, e.message = to, reason, msg
	if c := e.r.counter(from); c != nil {
		c.Add(-1)
	}
	if c := e.r.counter(to); c != nil {
		c.Add(1)
	}
	if to == lifecycle.Running {
		if e.startedAt.IsZero() {
			e.startedAt = now
		}
		e.startClockLocked()
	}
	if to.Terminal() {
		if e.grace != nil {
			e.grace.Stop()
		}
		e.cancel(runner.ErrStopped) // release the context's resources; cause is kept if already cancelled
		close(e.terminal)
		// The entry stays until Forget (its object's deletion, a new attempt), possibly for
		// days; what it reports below is the Sink's from here on, and no attempt reads this
		// run's checkpoint again (a resumed task starts a new entry from the stored one).
		defer func() { e.result, e.checkpoint = nil, nil }()
	}
	if e.r.base.Err() != nil || e.handedOver {
		return
	}
	e.spanTransitionLocked(from, to, reason, msg)
	t := Transition{
		Key: e.key, From: from, To: to, Attempt: e.spec.Attempt, At: now,
		Reason: reason, Message: msg, Progress: e.progress, StartedAt: e.startedAt, Span: e.traceParent,
	}
	if to == lifecycle.Finished {
		t.Result = e.result
	}
	e.r.opts.Logger.V(1).Info("task transition", "key", e.key, "task", e.spec.TaskName,
		"attempt", e.spec.Attempt, "from", from, "to", to, "reason", reason, "message", msg)
	e.r.opts.Sink.Transition(t)
}

// startClockLocked opens a Running segment and arms the timeout for the
// budget that is left.
func (e *entry) startClockLocked() {
	e.segStart = time.Now()
	e.touch()
	if e.spec.Timeout > 0 {
		left := max(e.spec.Timeout-e.runTime, 0)
		e.deadline = time.AfterFunc(left, e.deadlineExceeded)
	}
}

// stopClockLocked closes the Running segment: pausing stops the clock.
func (e *entry) stopClockLocked() {
	if e.segStart.IsZero() {
		return
	}
	e.runTime += time.Since(e.segStart)
	e.segStart = time.Time{}
	if e.deadline != nil {
		e.deadline.Stop()
		e.deadline = nil
	}
}

// admitLocked reserves the run's memory (once, FIFO) and then a slot (FIFO): -> Running with
// reason when both are free, else -> Pending (reason Queued) saying what it waits for.
func (e *entry) admitLocked(reason string) {
	if msg, ok := e.claimLocked(); !ok {
		e.transitionLocked(lifecycle.Pending, lifecycle.ReasonQueued, msg)
		return
	}
	e.transitionLocked(lifecycle.Running, reason, "")
}

// claimLocked takes what the run still lacks to run. It returns false and says what it now
// waits for when something is not free.
func (e *entry) claimLocked() (string, bool) {
	if !e.holdsMem {
		if w := e.r.memory.acquire(e.cost); w != nil {
			e.waiter, e.forMemory = w, true
			inUse, _ := e.r.memory.stats()
			return fmt.Sprintf("waiting for memory: needs %s, %s of %s reserved", bytesText(e.cost),
				bytesText(inUse), bytesText(e.r.opts.MemoryBudget)), false
		}
		e.holdsMem = true
	}
	if !e.holdsSlot {
		if w := e.r.slots.acquire(1); w != nil {
			e.waiter, e.forMemory = w, false
			inUse, _ := e.r.slots.stats()
			return fmt.Sprintf("waiting for a free slot (%d/%d in use)", inUse, e.r.opts.MaxConcurrent), false
		}
		e.holdsSlot = true
	}
	return "", true
}

// granted takes the claim w that was just handed over; it reports whether the run may start.
func (e *entry) grantedLocked() bool {
	if e.forMemory {
		e.holdsMem = true
	} else {
		e.holdsSlot = true
	}
	e.waiter = nil
	msg, ok := e.claimLocked()
	if !ok {
		e.message = msg // still Pending: now for a slot
	}
	return ok
}

// withdrawLocked leaves the queue it waits in (giving back what was granted meanwhile).
func (e *entry) withdrawLocked() {
	if e.waiter != nil {
		if e.forMemory {
			e.r.memory.withdraw(e.waiter)
		} else {
			e.r.slots.withdraw(e.waiter)
		}
		e.waiter = nil
	}
}

func (e *entry) releaseSlotLocked() {
	if e.holdsSlot {
		e.holdsSlot = false
		e.r.slots.release(1)
	}
}

// releaseMemoryLocked gives the run's memory back: it is over.
func (e *entry) releaseMemoryLocked() {
	if e.holdsMem {
		e.holdsMem = false
		e.r.memory.release(e.cost)
	}
}

// signal wakes the run goroutine if it is parked; never blocks.
func (e *entry) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// waitRunnable blocks the run goroutine until the entry is Running with a
// slot, or returns the cancellation cause. It is where both "not started yet"
// and "paused inside Yield" park: a blocked select, no CPU.
func (e *entry) waitRunnable(ctx context.Context) error {
	for {
		e.mu.Lock()
		st, w := e.state, e.waiter
		e.mu.Unlock()
		switch {
		case st == lifecycle.Running:
			return nil
		case st.Terminal():
			return context.Cause(e.ctx)
		}
		var grant <-chan struct{}
		if w != nil {
			grant = w.ch
		}
		select {
		case <-grant:
			e.mu.Lock()
			if e.waiter == w && e.state == lifecycle.Pending && e.grantedLocked() {
				reason := lifecycle.ReasonResumed
				if e.startedAt.IsZero() {
					reason = lifecycle.ReasonStarted
				}
				e.transitionLocked(lifecycle.Running, reason, "")
			}
			e.mu.Unlock()
		case <-e.wake:
		case <-e.ctx.Done():
			e.mu.Lock()
			e.withdrawLocked()
			e.mu.Unlock()
			return context.Cause(e.ctx)
		case <-ctx.Done():
			e.mu.Lock()
			e.withdrawLocked()
			e.mu.Unlock()
			return context.Cause(ctx)
		}
	}
}

// touch records a sign of life (see activity).
func (e *entry) touch() { e.activity.Store(int64(time.Since(e.r.epoch))) }

// returned reports whether the run goroutine has returned: none of the task's code runs.
func (e *entry) returned() bool {
	select {
	case <-e.exited:
		return true
	default:
		return false
	}
}

func (e *entry) isTerminal() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state.Terminal()
}

func (e *entry) snapshot() TaskSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	rt := e.runTime
	if !e.segStart.IsZero() {
		rt += time.Since(e.segStart)
	}
	snap := TaskSnapshot{
		Key: e.key, TaskName: e.spec.TaskName, Status: e.state, Attempt: e.spec.Attempt,
		Reason: e.reason, Message: e.message, Progress: e.progress, StartedAt: e.startedAt,
		PauseRequested: e.pauseReq.Load(), StopRequested: e.stopReq, RunTime: rt,
		MemoryBytes: e.cost, Abandoned: e.abandoned, Items: e.items.Load(),
	}
	if a := e.activity.Load(); a > 0 {
		snap.LastActivity = e.r.epoch.Add(time.Duration(a))
	}
	return snap
}
