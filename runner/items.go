package runner

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-logr/logr"
)

// Item is one unit of work of a task with items (spec.items): its index (0..count-1, or its
// place in spec.items.list) and its value (the list's element decoded into V; V's zero value
// for counted items).
type Item[V any] struct {
	Index int
	Value V
	// IdempotencyKey is a key for the item's side effects on external systems: the same for
	// every execution of this item, in any attempt, retry, resume or replica, until the task
	// restarts (spec.restartGeneration; a retry-failed too). Pass it to an API that
	// de-duplicates requests, so an item executed again after a crash or a stop has its effect
	// once.
	IdempotencyKey string
}

// ItemTask runs the items of one run of a task type registered with RegisterItems. RunItem is
// called from several goroutines at once (spec.items.parallelism of them), one item each, so
// the ItemTask must be safe for concurrent use.
//
// RunItem returning nil makes the item succeeded; an error fails this execution of it, which
// is retried while the item failed at most spec.items.maxRetries times (a Permanent error too:
// the item's own retries are the author's to bound). An item is executed at least once and
// again after a crash, a move or a stop that interrupted it: make its effect idempotent
// (Item.IdempotencyKey). ctx is cancelled on stop, timeout, shutdown, hand-over and the
// loss of the membership lease; an item that then returns is interrupted, not failed, and runs
// again with the next run. A pause lets the items in flight end and starts no more.
type ItemTask[V any] interface {
	RunItem(ctx context.Context, ctl ItemControl, item Item[V]) error
}

// ItemControl is what an item's execution may use of its run's Control: everything but the
// pause points, checkpoints and progress, which belong to the run (the runner pauses between
// items and reports the items' counts as progress).
type ItemControl interface {
	Key() Key
	Attempt() int
	Logger() logr.Logger
	Labels() map[string]string
	Annotations() map[string]string
	// IdempotencyKey is Control.IdempotencyKey: a key per attempt of the task. For an item's
	// own side effects use Item.IdempotencyKey, which stays the same across attempts.
	IdempotencyKey(step string) string
	Heartbeat()
}

// ClaimedItem is an item a run claimed: it runs as the item's execution Execution, in the
// task's restart generation Generation.
type ClaimedItem struct {
	Index      int
	Value      json.RawMessage
	Execution  int
	Generation int64
}

// ItemOutcome is how an execution of an item ended: Err nil (succeeded), Interrupted (the
// run was cancelled while it executed: it runs again, and no failure is counted), or failed.
type ItemOutcome struct {
	Index       int
	Execution   int
	Err         error
	Interrupted bool
}

// ItemFailure is an item that failed for good, with its last error.
type ItemFailure struct {
	Index int
	Error string
}

// ItemCounts are a task's items by state, and the first failures its run saw.
type ItemCounts struct {
	Pending, Running, Succeeded, Failed int64
	FirstFailures                       []ItemFailure
}

// Total is the number of items.
func (c ItemCounts) Total() int64 { return c.Pending + c.Running + c.Succeeded + c.Failed }

// ItemSource is where a run's items live: the operator backs it with PostgreSQL (a row per
// item, every write fenced by the task's owner), runnertest with memory. It is bound to one
// run (task, attempt, owner).
type ItemSource interface {
	// Begin prepares the items for this run (seeding them the first time, taking back items
	// an earlier run left running, making failed ones of earlier attempts pending again) and
	// counts them.
	Begin(ctx context.Context) (ItemCounts, error)
	// Claim marks up to n pending items running for this run, lowest index first; none when
	// no item is pending.
	Claim(ctx context.Context, n int) ([]ClaimedItem, error)
	// Finish records outcomes in one write and returns the items that failed for good (their
	// retries spent); the others that failed are pending again.
	Finish(ctx context.Context, outcomes []ItemOutcome) (failed []int, err error)
	// Parallelism is how many items the run executes at once.
	Parallelism() int
}

// ItemsHost is implemented by the Control the runner gives a run: the way a task with items
// reaches them. runnertest's Control implements it too.
type ItemsHost interface {
	// Items is the run's item source; false when its BackgroundTask has no spec.items.
	Items() (ItemSource, bool)
	// Pausing reports whether a pause was requested: the run then claims no more items and
	// lets those in flight end before it parks in Yield.
	Pausing() bool
	// ReportItems publishes the run's counts (the BackgroundTask's status.items).
	ReportItems(ItemCounts)
}

// ItemsResult is the result of a run whose items all succeeded.
type ItemsResult struct {
	Items int64 `json:"items"`
}

// RegisterItems adds a task type whose BackgroundTasks carry many items (spec.items): one
// object, a row per item in PostgreSQL, each item run by newTask's ItemTask with its index and
// value (decoded strictly into V: an unknown field fails the item). The run of the object is the runner's: it claims items in
// batches, runs spec.items.parallelism of them at once, records their outcomes in batches, and
// ends Finished when every item succeeded, Failed (reason Error, "N of M items failed; ...")
// when any failed for good, so spec.maxRetries retries the failed items only. Pause, resume,
// stop, restart, timeouts and the memory budget act on the object and so on all its items.
// Params, description and names work as in Register.
func RegisterItems[P Params, V any](reg *Registry, description string, newTask func(P) (ItemTask[V], error)) error {
	var zero P
	name := zero.TaskName()
	info, err := describe[P](name, description)
	if err != nil {
		return fmt.Errorf("runner: register task type %q: %w", name, err)
	}
	if newTask == nil {
		return fmt.Errorf("runner: register task type %q: nil constructor", name)
	}
	info.Items = true
	return reg.add(func(raw json.RawMessage) (Task[json.RawMessage], error) {
		p, err := DecodeParams[P](raw)
		if err != nil {
			return nil, err
		}
		t, err := newTask(p)
		if err != nil || t == nil {
			return nil, err
		}
		return &itemsRun[V]{task: t}, nil
	}, info)
}

// MustRegisterItems is RegisterItems that panics.
func MustRegisterItems[P Params, V any](reg *Registry, description string, newTask func(P) (ItemTask[V], error)) {
	if err := RegisterItems(reg, description, newTask); err != nil {
		panic(err)
	}
}
