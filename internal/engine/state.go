package engine

import (
	"encoding/json"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/runner"
)

// Transition is one state change, reported to the Sink exactly once, in
// order per key.
type Transition struct {
	Key      Key
	From, To lifecycle.Status // From is "" for the first report of a run started by StartTask
	Attempt  int
	At       time.Time
	Reason   string // CamelCase machine reason, one of lifecycle's Reason constants
	Message  string // human text: error text, panic value + trimmed stack (storable, <= 4096 characters)
	Progress string
	Result   json.RawMessage // set when To is Finished
	// StartedAt is when this attempt first became Running (zero if never).
	StartedAt time.Time
	// Span is the W3C traceparent of the execution's span ("" when not tracing).
	Span string
}

// TaskSnapshot is a point-in-time copy of one entry, for status endpoints and
// tests. It never blocks on the task.
type TaskSnapshot struct {
	Key            Key
	TaskName       string
	Status         lifecycle.Status
	Attempt        int
	Reason         string
	Message        string
	Progress       string
	StartedAt      time.Time
	PauseRequested bool // PauseTask was called, the task has not reached Yield yet
	StopRequested  bool
	// RunTime is the running time consumed by this attempt so far; it is
	// what StartSpec.Timeout is compared against and does not grow while
	// the task is Paused or Pending.
	RunTime time.Duration
	// LastActivity is when the run last reached a pause point, reported
	// progress, saved a checkpoint or sent a heartbeat (zero before it ran).
	LastActivity time.Time
	// MemoryBytes is the memory the run reserves from the budget.
	MemoryBytes int64
	// Abandoned: the run was reported over after it ignored its cancellation for the stop
	// grace, and its goroutine has not returned yet (a new run of the key waits for it).
	Abandoned bool
	// Items are the counts the run of a task with items last reported (nil: none yet). Do
	// not modify them.
	Items *runner.ItemCounts
}

// Stats are cheap counters for metrics.
type Stats struct {
	Running, Pending, Paused int
	SlotsInUse               int
	MaxConcurrent            int
	// MemoryInUse is the memory reserved by admitted runs (bytes), MemoryBudget the limit
	// (0: none).
	MemoryInUse, MemoryBudget int64
	// Abandoned counts goroutines whose run was reported over (Stopped, or
	// Failed after its timeout) once StopGrace ran out, but which have not
	// returned yet: Go cannot stop a goroutine from the outside.
	Abandoned int
	// Entries counts the runs the runner holds, ended ones included until forgotten.
	Entries int
}
