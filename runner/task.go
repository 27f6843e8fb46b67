package runner

import (
	"context"
	"encoding/json"
	"time"

	"github.com/go-logr/logr"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// Task is one run of a task type: the Go counterpart of a pre/run/post base class, with a
// result of type R (the run's result, stored as JSON in the task's row and shown in its status;
// json.RawMessage for a result already encoded, struct{} for none). The constructor given to
// Register builds a Task for one run (attempt) and it is never reused, so it may keep per-run
// state in fields.
//
// All three hooks are called from the same goroutine, the run goroutine that the runner owns
// for this run, one after the other; never concurrently.
//
//   - Pre is called once per run, before Run, after the run got a concurrency slot (a run
//     admitted paused calls Pre only after it is resumed). Use it to validate the environment
//     or acquire resources. A non-nil error ends the run as Failed (reason Error, message
//     prefixed "pre: ") and Run is not called; Post is still called so Pre's resources can be
//     released.
//   - Run does the work. It must reach a pause point regularly (Control.Yield, or Control.Sleep
//     when it waits): that is where a pause takes effect and where stop, timeout, shutdown,
//     hand-over and the loss of the membership lease are noticed. It should also watch ctx in
//     any blocking call (cancelled with cause ErrStopped, ErrDeadlineExceeded, ErrShutdown,
//     ErrLeaseLost or ErrHandedOver). Returning with a nil error ends the run Finished (a
//     result over MaxResultBytes ends it Failed, reason ResultTooLarge); an error ends it
//     Failed (reason Error, retried as spec.maxRetries says; reason PermanentError, never
//     retried, for an error marked with Permanent), unless the run was stopped (then Stopped,
//     whatever Run returns) or timed out (Failed, reason DeadlineExceeded).
//   - Post is called exactly once for every run in which Pre was called, after Run returned
//     (or after Pre failed), with the outcome about to be recorded. Its ctx is not cancelled
//     by a stop (so cleanup can finish) but is on shutdown. A Post error does NOT change the
//     outcome (a Finished run stays Finished): it is appended to the transition message as
//     "post: ...". Post is not called when the operator shuts down or hands the run over,
//     because the run is not over: the next owner resumes it.
//
// A panic in any hook is recovered: the run ends Failed with reason Panic and a message holding
// the panic value and a trimmed stack; other tasks keep running.
type Task[R any] interface {
	Pre(ctx context.Context, ctl Control) error
	Run(ctx context.Context, ctl Control) (result R, err error)
	Post(ctx context.Context, outcome Outcome) error
}

// Base gives a Task no-op Pre and Post so simple types only write Run.
type Base struct{}

// Pre does nothing.
func (Base) Pre(context.Context, Control) error { return nil }

// Post does nothing.
func (Base) Post(context.Context, Outcome) error { return nil }

// Outcome is what Post sees: the phase about to be recorded (Finished, Failed or Stopped), the
// error that caused it (nil when Finished; ErrStopped or ErrDeadlineExceeded when cancelled) and
// Run's result as it is stored (JSON).
type Outcome struct {
	Phase  v1alpha1.Phase
	Err    error
	Result json.RawMessage
}

// Key is a task's identity in the runner: its BackgroundTask's UID. One key has at most one
// live run at a time.
type Key string

// MaxCheckpointBytes bounds one checkpoint, and MaxResultBytes a result, measured as
// PostgreSQL stores them (the length of jsonb's text form, which is longer than compact JSON:
// a space follows every ':' and ','). Both live in the task's database row, so they must stay
// small.
const (
	MaxCheckpointBytes = lifecycle.MaxPayloadBytes
	MaxResultBytes     = lifecycle.MaxPayloadBytes
)

// MaxProgressLen bounds SetProgress text (characters), which ends up in the CR status.
const MaxProgressLen = lifecycle.MaxProgressChars

// Control is the handle a run gets from the runner. Its methods are safe to
// call from the run goroutine (and, except Yield, from goroutines the task
// starts itself).
type Control interface {
	// Key is the task's identity (its BackgroundTask's UID).
	Key() Key
	// Attempt is the attempt this run belongs to (status.attempt): 1 for the first, one more
	// for every retry and restart; a run resumed after a crash or a move keeps its attempt.
	Attempt() int
	// Deadline is when the timeout fires if the task keeps running without a
	// pause; it moves later after every pause. ok is false without a timeout.
	Deadline() (deadline time.Time, ok bool)
	// SetProgress records short human text ("42%", "420/1000"), truncated to
	// MaxProgressLen characters. It reaches the row and the status a moment later (at most
	// every --progress-update-interval); it records no transition.
	SetProgress(p string)
	// SaveCheckpoint JSON-encodes v and queues it for the task's row, then returns at once: it
	// reaches PostgreSQL shortly after, in order with the run's transitions, and only the
	// latest of several waiting checkpoints is written. So a crash can lose the last
	// checkpoints, and the next run of the attempt resumes from an earlier one: work since then
	// is done again (at-least-once). An encoding over MaxCheckpointBytes fails with a
	// *CheckpointTooLargeError; strings lose NUL characters, which PostgreSQL cannot store.
	// Only an accepted checkpoint becomes the one LoadCheckpoint sees.
	SaveCheckpoint(ctx context.Context, v any) error
	// LoadCheckpoint decodes the last checkpoint into v: the last one saved by this run or,
	// before that, the last one recorded for this attempt (a run resumed after a crash, a
	// pause or a move). found is false when there is none (start from scratch).
	LoadCheckpoint(v any) (found bool, err error)
	// Yield is the pause point. It returns nil at once when no pause is requested; blocks
	// (no CPU, no slot held) while paused; and returns a non-nil error, the cancellation cause
	// (ErrStopped, ErrDeadlineExceeded, ErrShutdown, ErrLeaseLost, ErrHandedOver), as soon as
	// the run is cancelled. Call it only from the run goroutine. It is also a sign of life
	// (see Heartbeat).
	Yield(ctx context.Context) error
	// Sleep is a pause point that waits: it returns nil once d has passed, and the
	// cancellation cause as soon as the run is cancelled (stop, timeout, shutdown, hand-over),
	// without waiting out d. A pause requested meanwhile takes effect at once, inside Sleep
	// (as in Yield); the rest of d is waited once the run resumes. Use it for a delay between
	// steps (politeness, polling) instead of time.Sleep, which would hold a pause, a stop or a
	// hand-over back for up to d. Call it only from the run goroutine.
	Sleep(ctx context.Context, d time.Duration) error
	// Heartbeat says the run is alive without pausing: a task with long
	// stretches between pause points calls it so that it is not reported
	// stalled (spec.stallTimeout). Yield, SetProgress and SaveCheckpoint count
	// as heartbeats too. It costs one atomic store; call it from any goroutine.
	Heartbeat()
	// Logger is a logger carrying the task's namespace, name, uid, type and attempt; the run's
	// ctx carries it too (logr.FromContextOrDiscard).
	Logger() logr.Logger
	// Labels and Annotations are the BackgroundTask's, as they were when this run started:
	// for routing, tenancy and tracing context. Do not modify the maps.
	Labels() map[string]string
	Annotations() map[string]string
	// IdempotencyKey is a key for side effects on external systems (a payment, an e-mail)
	// that is the same for every run of this attempt, on any operator replica, before or
	// after a crash, and different for the next attempt: pass it to an API that de-duplicates
	// requests by key, so an effect repeated after a crash is done once. step names the
	// effect within the attempt ("" for one effect per attempt; "charge", "email-42").
	IdempotencyKey(step string) string
}

// Sized is implemented by a task that knows how much memory a run of it needs, from its params,
// so that the runner admits runs within its memory budget (--memory-budget) instead of
// letting one tenant's runs take the whole pod. A task that is not Sized is assumed to need
// DefaultTaskMemory.
type Sized interface {
	MemoryBytes() int64
}

// DefaultTaskMemory is the memory assumed for a run of a task that is not Sized: its goroutine,
// its task value and its bookkeeping.
const DefaultTaskMemory = 64 << 10

// factory builds one run's task from its raw params (Register makes it from the typed
// constructor).
type factory func(params json.RawMessage) (Task[json.RawMessage], error)
