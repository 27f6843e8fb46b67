package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"
)

// Lease tells the runner whether this process may still run tasks. The operator backs it
// with its membership lease: Valid turns false, for good, as soon as the lease may have expired
// in the eyes of other processes (for example after the process was frozen), so that a woken
// process stops at its tasks' next pause point instead of running them next to their new
// owner. Valid is called on every Yield and must be cheap.
type Lease interface {
	Valid() bool
}

// Sink receives every state change.
//
// Contract: Transition is called sequentially per key (never concurrently for
// the same key) and in order, exactly once per change. It is called with the
// task's internal lock held, from a runner goroutine or synchronously from the
// Runner method that caused the change (StartTask, PauseTask, ResumeTask,
// StopTask). It therefore MUST return quickly (the controller's
// sink appends to an in-memory outbox) and MUST NOT call Runner methods or
// wait for something that does, or it deadlocks.
type Sink interface {
	Transition(Transition)
}

// CheckpointSaver takes checkpoints; the operator's journal queues them for PostgreSQL.
// attempt lets the store ignore a late save from an older attempt. It is
// called from the task's goroutine without runner locks held, so it may block
// on I/O, but should honour ctx.
type CheckpointSaver interface {
	SaveCheckpoint(ctx context.Context, key Key, attempt int, data json.RawMessage) error
}

// Defaults for zero Options fields.
const (
	DefaultMaxConcurrent = 64
	DefaultStopGrace     = 10 * time.Second
)

// Options configure a Runner. Registry is required; everything else has a
// default.
type Options struct {
	Registry *Registry
	// Sink receives transitions; nil discards them (tests/benchmarks only).
	Sink Sink
	// Checkpoints persists checkpoints; nil keeps them in memory only.
	Checkpoints CheckpointSaver
	// Lease, when set, is checked before a run starts and on every Yield; once
	// it is invalid every run is cancelled with runner.ErrLeaseLost and nothing more is
	// started or reported.
	Lease Lease
	// MaxConcurrent bounds tasks holding a slot (Running). Paused tasks do
	// not hold one; Pending tasks wait FIFO. 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	// MemoryBudget bounds the memory (bytes) reserved by admitted runs, from
	// their admission to their end, paused or not: each reserves what its task
	// says it needs (Sized), or DefaultTaskMemory. Runs wait Pending, FIFO,
	// until theirs is free; a run that needs more than the whole budget is
	// refused with runner.ErrInvalidParams. 0 means no budget.
	MemoryBudget int64
	// StopGrace is how long StopTask waits for a task that ignores
	// cancellation before reporting it Stopped anyway, and how long shutdown
	// waits for goroutines. 0 means DefaultStopGrace.
	StopGrace time.Duration
	// Returned, when set, is called when the goroutine of an abandoned run (see
	// Stats.Abandoned) returns: the next run of its key may start now. It must not block.
	Returned func(Key)
	// Clock stamps Transition.At and StartedAt; default time.Now. Timeouts
	// and StopGrace always use real timers.
	Clock func() time.Time
	// Logger defaults to logr.Discard().
	Logger logr.Logger
	// Tracer, when set, opens a span per execution (see SpanName) that is in the task's ctx;
	// nil traces nothing.
	Tracer trace.Tracer
}

// budget is the memory semaphore's capacity: the budget, or unlimited.
func (o Options) budget() int64 {
	if o.MemoryBudget == 0 {
		return math.MaxInt64
	}
	return o.MemoryBudget
}

type discardSink struct{}

func (discardSink) Transition(Transition) {}

func (o Options) withDefaults() (Options, error) {
	if o.Registry == nil {
		return o, errors.New("runner: Options.Registry is required")
	}
	if o.MemoryBudget < 0 {
		return o, fmt.Errorf("runner: Options.MemoryBudget must be >= 0, got %d", o.MemoryBudget)
	}
	if o.MaxConcurrent < 0 {
		return o, fmt.Errorf("runner: Options.MaxConcurrent must be >= 0, got %d", o.MaxConcurrent)
	}
	if o.StopGrace < 0 {
		return o, fmt.Errorf("runner: Options.StopGrace must be >= 0, got %s", o.StopGrace)
	}
	if o.Sink == nil {
		o.Sink = discardSink{}
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.StopGrace == 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	return o, nil
}
