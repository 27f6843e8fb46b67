package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/shrink"
	"github.com/taskpilot/taskpilot/runner"
)

// phase is the Runner's own lifecycle, guarded by Runner.mu.
type phase int

const (
	phaseNew      phase = iota // constructed; task calls return ErrNotStarted
	phaseRunning               // Start is blocking; task calls accepted
	phaseStopping              // Start's ctx is done; task calls return runner.ErrShutdown
)

// Runner runs tasks as goroutines. It is a controller-runtime
// manager.Runnable (Start(ctx) error) without importing controller-runtime.
//
// Locking: r.mu guards the entry map and the phase only; each entry has its
// own mutex for its state machine, so tasks never contend with each other on
// the hot path. Lock order is r.mu -> entry.mu -> slots.mu.
type Runner struct {
	opts   Options
	slots  *slots
	memory *slots // bytes of Options.MemoryBudget
	epoch  time.Time

	base       context.Context // parent of every run context; cancelled with runner.ErrShutdown
	cancelBase context.CancelCauseFunc
	startedCh  chan struct{}
	returned   chan struct{} // closed once stopped and every run goroutine returned

	mu      sync.Mutex
	phase   phase
	entries shrink.Map[Key, *entry] // gives its memory back after a peak
	wg      sync.WaitGroup          // run goroutines

	running, pending, paused, abandoned atomic.Int64
}

// New validates opts and returns a Runner. Nothing runs until Start.
func New(opts Options) (*Runner, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancelCause(context.Background())
	return &Runner{
		opts:       o,
		slots:      newSlots(int64(o.MaxConcurrent)),
		memory:     newSlots(o.budget()),
		epoch:      time.Now(),
		base:       base,
		cancelBase: cancel,
		startedCh:  make(chan struct{}),
		returned:   make(chan struct{}),
	}, nil
}

// Start accepts tasks until ctx is done, then shuts down: every run is
// cancelled with cause runner.ErrShutdown, Post is not called and NO transition is
// reported, so the durable record keeps those tasks Running/Paused and the
// next leader resumes them from their last checkpoint (at-least-once
// execution). Start waits up to StopGrace for the run goroutines, then
// returns nil. Task calls made before Start return ErrNotStarted; the
// controller only calls after Started() is closed. A Runner cannot be
// restarted: a second Start returns an error.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.phase != phaseNew {
		r.mu.Unlock()
		return errors.New("runner: Start called more than once")
	}
	r.phase = phaseRunning
	close(r.startedCh)
	r.mu.Unlock()
	r.opts.Logger.Info("task runner started", "maxConcurrent", r.opts.MaxConcurrent)

	<-ctx.Done()

	r.mu.Lock()
	r.phase = phaseStopping
	r.mu.Unlock()
	r.cancelBase(runner.ErrShutdown)

	go func() { r.wg.Wait(); close(r.returned) }()
	timer := time.NewTimer(r.opts.StopGrace)
	defer timer.Stop()
	select {
	case <-r.returned:
		r.opts.Logger.Info("task runner stopped")
	case <-timer.C:
		r.opts.Logger.Info("task runner stopped with task goroutines still running after the stop grace",
			"stopGrace", r.opts.StopGrace)
	}
	return nil
}

// leaseValid checks Options.Lease; the first time it fails every run is cancelled with
// runner.ErrLeaseLost (which, like shutdown, reports nothing) and no new run starts.
func (r *Runner) leaseValid() bool {
	if r.base.Err() != nil {
		return !errors.Is(context.Cause(r.base), runner.ErrLeaseLost)
	}
	if r.opts.Lease == nil || r.opts.Lease.Valid() {
		return true
	}
	r.opts.Logger.Info("membership lease lost: stopping every run without recording anything; the next owner resumes them")
	r.cancelBase(runner.ErrLeaseLost)
	return false
}

// Returned is closed once Start stopped the runner and every run goroutine has returned. Start
// gives up waiting after the stop grace; a task that ignores its cancellation for longer keeps
// this open, and its owner must not let another process run the task until it closes.
func (r *Runner) Returned() <-chan struct{} { return r.returned }

// Started is closed once Start is running and task calls are accepted.
func (r *Runner) Started() <-chan struct{} { return r.startedCh }

// phaseErrLocked is the error for task calls in the current phase.
func (r *Runner) phaseErrLocked() error {
	switch r.phase {
	case phaseNew:
		return ErrNotStarted
	case phaseStopping:
		return runner.ErrShutdown
	case phaseRunning:
	}
	if !r.leaseValid() {
		return runner.ErrLeaseLost
	}
	return nil
}

// lookup returns the entry for key once the runner is accepting calls.
func (r *Runner) lookup(key Key) (*entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.phaseErrLocked(); err != nil {
		return nil, err
	}
	e, ok := r.entries.Lookup(key)
	if !ok {
		return nil, fmt.Errorf("task %q: %w", key, ErrNotFound)
	}
	return e, nil
}

// Forget drops a terminal entry (after the CR was deleted) so memory does not
// grow with history. A non-terminal entry is ErrActive: stop it first.
func (r *Runner) Forget(key Key) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries.Lookup(key)
	if !ok {
		return fmt.Errorf("forget task %q: %w", key, ErrNotFound)
	}
	e.mu.Lock()
	st := e.state
	e.mu.Unlock()
	if !st.Terminal() {
		return fmt.Errorf("forget task %q in state %s: %w", key, st, ErrActive)
	}
	r.entries.Delete(key)
	return nil
}

// Snapshot copies the entry's current view without waiting for the task.
func (r *Runner) Snapshot(key Key) (TaskSnapshot, bool) {
	r.mu.Lock()
	e, ok := r.entries.Lookup(key)
	r.mu.Unlock()
	if !ok {
		return TaskSnapshot{}, false
	}
	return e.snapshot(), true
}

// Stats reads counters maintained on every transition; it is O(1).
func (r *Runner) Stats() Stats {
	inUse, _ := r.slots.stats()
	memory, _ := r.memory.stats()
	r.mu.Lock()
	entries := r.entries.Len()
	r.mu.Unlock()
	return Stats{
		Entries:       entries,
		Running:       int(r.running.Load()),
		Pending:       int(r.pending.Load()),
		Paused:        int(r.paused.Load()),
		SlotsInUse:    int(inUse),
		MaxConcurrent: r.opts.MaxConcurrent,
		MemoryInUse:   memory,
		MemoryBudget:  r.opts.MemoryBudget,
		Abandoned:     int(r.abandoned.Load()),
	}
}

// counter returns the gauge tracking state s, or nil for terminal states.
func (r *Runner) counter(s lifecycle.Status) *atomic.Int64 {
	switch s {
	case lifecycle.Running:
		return &r.running
	case lifecycle.Pending:
		return &r.pending
	case lifecycle.Paused:
		return &r.paused
	case lifecycle.Finished, lifecycle.Failed, lifecycle.Stopped:
	}
	return nil
}

// spawn starts the run goroutine unless the runner is shutting down. The
// WaitGroup is incremented under r.mu so it can never race with Start's Wait.
func (r *Runner) spawn(e *entry) {
	r.mu.Lock()
	if r.phase != phaseRunning {
		r.mu.Unlock()
		close(e.exited) // it never runs
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go e.main()
}
