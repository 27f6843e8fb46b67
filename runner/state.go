package runner

import (
	"encoding/json"
	"time"

	"github.com/taskpilot/taskpilot/internal/lifecycle"
)

// State is the runner's view of one task run.
type State string

const (
	// StatePending: admitted but waiting FIFO for a concurrency slot.
	// In: StartTask/ResumeTask when no slot is free. Out: the runner when a
	// slot frees (-> Running), PauseTask (-> Paused), StopTask (-> Stopped).
	StatePending State = "Pending"
	// StateRunning: holds a slot and is executing Pre/Run/Post.
	// In: StartTask/ResumeTask with a free slot, or the runner granting a
	// slot to a Pending task. Out: the task reaching Yield after PauseTask
	// (-> Paused), the task returning (-> Finished/Failed), StopTask (->
	// Stopped), the timeout (-> Failed).
	StateRunning State = "Running"
	// StatePaused: parked at a Yield (or admitted paused); holds no slot.
	// In: the task's Yield after PauseTask, PauseTask on a Pending task.
	// Out: ResumeTask (-> Running/Pending),
	// StopTask (-> Stopped).
	StatePaused State = "Paused"
	// StateFinished (terminal): Run returned a result. Set by the runner.
	StateFinished State = "Finished"
	// StateFailed (terminal): Pre/Run returned an error, a hook panicked or
	// the timeout fired. Set by the runner.
	StateFailed State = "Failed"
	// StateStopped (terminal): StopTask cancelled the run. Set by
	// the runner once the task returned, or when StopGrace ran out.
	StateStopped State = "Stopped"
)

// Terminal reports whether no further transition can follow for this run.
func (s State) Terminal() bool {
	return s == StateFinished || s == StateFailed || s == StateStopped
}

// Key is the opaque identity of a task chosen by the caller (the controller
// uses the Kubernetes UID). One key has at most one live run at a time.
type Key string

// Reasons used in Transition.Reason. They are CamelCase so the controller can
// copy them verbatim into a Kubernetes condition.
const (
	ReasonQueued            = "Queued"
	ReasonStarted           = "Started"
	ReasonPaused            = "Paused"
	ReasonResumed           = "Resumed"
	ReasonCompleted         = "Completed"
	ReasonError             = "Error"
	ReasonPanic             = "Panic"
	ReasonStopped           = "Stopped"
	ReasonStopGraceExceeded = "StopGraceExceeded"
	ReasonDeadlineExceeded  = "DeadlineExceeded"
	ReasonResultTooLarge    = lifecycle.ReasonResultTooLarge
	ReasonPauseTimeout      = lifecycle.ReasonPauseTimeout
)

// Transition is one state change, reported to the Sink exactly once, in
// order per key.
type Transition struct {
	Key      Key
	From, To State // From is "" for the first report of a run started by StartTask
	Attempt  int
	At       time.Time
	Reason   string // CamelCase machine reason, see the Reason* constants
	Message  string // human text: error text, panic value + trimmed stack (storable, <= 4096 characters)
	Progress string
	Result   json.RawMessage // set when To is Finished
	// StartedAt is when this attempt first became Running (zero if never).
	StartedAt time.Time
}

// TaskSnapshot is a point-in-time copy of one entry, for status endpoints and
// tests. It never blocks on the task.
type TaskSnapshot struct {
	Key            Key
	TaskName       string
	State          State
	Attempt        int
	Reason         string
	Message        string
	Progress       string
	StartedAt      time.Time
	Result         json.RawMessage
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
}
