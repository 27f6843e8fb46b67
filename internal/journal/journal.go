package journal

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/shrink"
	"github.com/taskpilot/taskpilot/store"
)

var (
	// ErrUntracked: the journal does not know the task (never adopted, or forgotten).
	ErrUntracked = errors.New("task is not tracked by the journal")
	// ErrBacklogFull: the task has MaxBacklog transitions waiting for PostgreSQL; the
	// controller's own decisions wait until some are written (memory stays bounded during an
	// outage).
	ErrBacklogFull = errors.New("too many transitions of this task are waiting for PostgreSQL")
)

// Store is what the journal writes with; *store.Repository implements it.
type Store interface {
	// RecordTransitions records the transitions of distinct tasks in one round trip; errs[i]
	// is the outcome of ws[i], as a write of its own would have had it.
	RecordTransitions(ctx context.Context, ws []store.TransitionWrite) (errs []error)
	SaveCheckpoint(ctx context.Context, uid string, owner store.Owner, attempt int, data json.RawMessage) error
	UpdateColumns(ctx context.Context, uid string, owner store.Owner, u store.ColumnUpdate) error
	MarkDeleted(ctx context.Context, uid string) error
	Release(ctx context.Context, uid string, owner store.Owner) error
}

// Defaults for zero Options fields.
const (
	DefaultWriters      = 8
	DefaultWriteTimeout = 5 * time.Second
	DefaultFlushTimeout = 5 * time.Second
	DefaultMaxBacklog   = 64
	DefaultMaxBatch     = 256
	// MaxResultInMemory bounds the committed result kept for the status; PostgreSQL has the
	// whole result, the BackgroundTask shows at most this much.
	MaxResultInMemory = 4 << 10
)

// Options configure a Journal. Store and Owner are required.
type Options struct {
	Store Store
	// Owner is this process as a task owner (its fencing token fences every write).
	Owner func() store.Owner
	Clock clock.PassiveClock
	Log   logr.Logger
	// Decide asks the controller to look at a task again: a run changed, a task was fenced,
	// a deletion was written, the backlog drained below MaxBacklog.
	Decide func(types.NamespacedName)
	// Report asks the status writer to look at a task again: a transition was committed, or
	// writes started or stopped failing.
	Report  func(types.NamespacedName)
	Metrics *Metrics
	// Writers is the number of goroutines taking tasks from the queue: each writes a
	// checkpoint, progress or deletion itself, and hands a transition to the batch writers.
	Writers int
	// MaxBatch bounds the transitions (of as many tasks) written in one statement.
	MaxBatch int
	// WriteTimeout bounds one write; FlushTimeout bounds the flush on shutdown.
	WriteTimeout, FlushTimeout time.Duration
	// MaxBacklog bounds the transitions of one task waiting for PostgreSQL before Record
	// refuses the controller's own (the runner's are always accepted: a run makes few).
	MaxBacklog int
	// MaxBacklogBytes bounds the memory of every task's unwritten changes before new work waits
	// (Deferring); 0 means DefaultMaxBacklogBytes.
	MaxBacklogBytes int64
}

// Journal keeps the tasks this process owns and writes their changes to PostgreSQL.
type Journal struct {
	opts  Options
	log   logr.Logger
	queue workqueue.TypedRateLimitingInterface[string]
	// transitions carries the writers' transitions to the batch writers.
	transitions chan queuedTransition

	mu    sync.Mutex
	tasks shrink.Map[string, *entry] // gives its memory back after a peak (a failover)
	bytes int64                      // what the tasks' unwritten changes hold (entry.weight summed)
}

// New builds a Journal; Start runs its writers.
func New(opts Options) (*Journal, error) {
	if opts.Store == nil || opts.Owner == nil {
		return nil, errors.New("journal: Store and Owner are required")
	}
	if opts.Writers < 0 || opts.MaxBatch < 0 {
		return nil, fmt.Errorf("journal: Writers (%d) and MaxBatch (%d) must be positive (0: the default)", opts.Writers, opts.MaxBatch)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	nop := func(types.NamespacedName) {}
	if opts.Decide == nil {
		opts.Decide = nop
	}
	if opts.Report == nil {
		opts.Report = nop
	}
	opts.Writers = cmp.Or(opts.Writers, DefaultWriters)
	opts.WriteTimeout = cmp.Or(opts.WriteTimeout, DefaultWriteTimeout)
	opts.FlushTimeout = cmp.Or(opts.FlushTimeout, DefaultFlushTimeout)
	opts.MaxBacklog = cmp.Or(opts.MaxBacklog, DefaultMaxBacklog)
	opts.MaxBatch = cmp.Or(opts.MaxBatch, DefaultMaxBatch)
	opts.MaxBacklogBytes = cmp.Or(opts.MaxBacklogBytes, DefaultMaxBacklogBytes)
	j := &Journal{
		opts: opts,
		log:  opts.Log.WithName("journal"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "taskpilot-journal"},
		),
	}
	j.transitions = make(chan queuedTransition, j.batchLoops()*opts.MaxBatch)
	return j, nil
}

// View is what decisions about a task are made from.
type View struct {
	NamespacedName types.NamespacedName
	// Record is the projected record: what PostgreSQL holds plus every queued change.
	Record lifecycle.Record
	// Checkpoint is the checkpoint of Record.Attempt read when the task was adopted, until a
	// run of that attempt is handed to the runner.
	Checkpoint json.RawMessage
	// HandedAttempt is the attempt this process last handed to the runner (0: none).
	HandedAttempt int
	// LastSpan is the W3C traceparent of the task's latest traced execution, here or (read
	// from the row when adopted) in another process; "" when none was traced.
	LastSpan string
	// Backlog counts transitions not yet committed.
	Backlog int
	// Ownership says whether this process still owns the row; FencedBy is the owner that
	// refused its write (Fenced).
	Ownership Ownership
	FencedBy  store.Owner
	// DeleteRefused: PostgreSQL refused for good to close the row of the deleted object (the
	// sweep tries again); the task need not be tracked for it.
	DeleteRefused bool
}

// Problem says why the record lags behind or was refused.
type Problem struct {
	// Reason is "" (none), ReasonDatabaseUnreachable or ReasonRecordRejected.
	Reason  string
	Message string
}

// Reasons of a Problem.
const (
	ReasonDatabaseUnreachable = "DatabaseUnreachable"
	ReasonRecordRejected      = lifecycle.ReasonRecordRejected
)

// Committed is what PostgreSQL holds for a task, for the status.
type Committed struct {
	Record lifecycle.Record
	// Result is the committed result of a Finished record (at most MaxResultInMemory bytes,
	// else a {"truncated":true,"bytes":N} marker).
	Result json.RawMessage
	// Progress is the last progress written (or adopted).
	Progress string
	Problem  Problem
	// Backlog counts transitions not yet committed; OldestPending is when the oldest of them
	// was queued.
	Backlog       int
	OldestPending time.Time
	// Ownership: the status is written only while this process owns the row.
	Ownership Ownership
	// Since is when the committed record last changed (or was adopted).
	Since time.Time
}

// Announcement is one committed transition, for the next Kubernetes Event.
type Announcement struct {
	From, To lifecycle.Status
	Attempt  int
	Reason   string
	Message  string
	// Warning marks a change the user must hear about even when it is not a failure: a
	// write PostgreSQL rejected.
	Warning bool
}

// maxAnnouncements bounds the transitions kept for the next Event of one task.
const maxAnnouncements = 16

type entry struct {
	nn        types.NamespacedName
	committed lifecycle.Record
	result    json.RawMessage
	progress  string
	projected lifecycle.Record

	events             []pending
	enqueued, resolved uint64 // events queued / committed or dropped since tracking
	checkpoint         *pendingCheckpoint
	columns            store.ColumnUpdate
	desired            lifecycle.Desired
	desiredSince       time.Time // when desired last changed, until a transition reaches it
	deleteRequested    bool
	deleteRefused      bool
	releaseRequested   bool

	adopted  json.RawMessage
	lastSpan string
	handed   struct {
		attempt           int
		restartGeneration int64
	}
	changedAt     time.Time
	ownership     Ownership
	fencedBy      store.Owner
	problem       Problem
	announcements []Announcement
	weight        int64 // what its unwritten changes hold (weigh)
}

type pending struct {
	ev          lifecycle.Event
	result      json.RawMessage
	progress    *string
	substituted bool
	queuedAt    time.Time
}

type pendingCheckpoint struct {
	attempt int
	data    json.RawMessage
	after   uint64 // written once this many events are resolved
}

// Track starts tracking a task from its row (created or claimed by this process). Tracking a
// tracked task returns its view unchanged.
func (j *Journal) Track(nn types.NamespacedName, row *store.Task) View {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.tasks.Lookup(row.UID); ok {
		return e.view()
	}
	rec := row.Record()
	e := &entry{nn: nn, committed: rec, projected: rec, progress: row.Progress, desired: row.DesiredState,
		adopted: bytes.Clone(row.CurrentCheckpoint()), lastSpan: row.RunSpan, changedAt: j.opts.Clock.Now()}
	if rec.Status == lifecycle.Finished {
		e.result = boundResult(row.Result)
	}
	j.tasks.Set(row.UID, e)
	j.opts.Metrics.moved("", rec.Status)
	j.opts.Metrics.trackedOne()
	return e.view()
}

// Tracked counts the tasks tracked now.
func (j *Journal) Tracked() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.tasks.Len()
}

// View returns the decision view of a tracked task.
func (j *Journal) View(uid string) (View, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.tasks.Lookup(uid)
	if !ok {
		return View{}, false
	}
	return e.view(), true
}

// Committed returns what PostgreSQL holds for a tracked task.
func (j *Journal) Committed(uid string) (Committed, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.tasks.Lookup(uid)
	if !ok {
		return Committed{}, false
	}
	c := Committed{Record: e.committed, Result: e.result, Progress: e.progress, Problem: e.problem,
		Backlog: len(e.events), Ownership: e.ownership, Since: e.changedAt}
	if len(e.events) > 0 {
		c.OldestPending = e.events[0].queuedAt
	}
	return c, true
}

// Forget drops a task: its BackgroundTask is gone and its deletion is written, or another
// process owns it now. Anything unwritten is lost.
func (j *Journal) Forget(uid string) {
	j.mu.Lock()
	e, ok := j.tasks.Lookup(uid)
	j.tasks.Delete(uid)
	if ok {
		j.bytes -= e.weight
	}
	j.mu.Unlock()
	if ok {
		j.opts.Metrics.moved(e.committed.Status, "")
	}
}

// Backlog returns the number of transitions waiting over all tasks.
func (j *Journal) Backlog() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	j.tasks.Range(func(_ string, e *entry) bool { n += len(e.events); return true })
	return n
}

// TakeAnnouncements returns the committed transitions not yet told in an Event, and forgets
// them.
func (j *Journal) TakeAnnouncements(uid string) []Announcement {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.tasks.Lookup(uid)
	if !ok {
		return nil
	}
	out := e.announcements
	e.announcements = nil
	return out
}

func (e *entry) view() View {
	v := View{NamespacedName: e.nn, Record: e.projected, HandedAttempt: e.handed.attempt, LastSpan: e.lastSpan, Backlog: len(e.events),
		Ownership: e.ownership, FencedBy: e.fencedBy, DeleteRefused: e.deleteRefused}
	if len(e.adopted) > 0 {
		v.Checkpoint = e.adopted
	}
	return v
}

// reproject rebuilds the projected record from the committed one and the queued events,
// dropping events that no longer apply (after a write was dropped).
func (e *entry) reproject(log logr.Logger) {
	e.projected = e.committed
	kept := e.events[:0]
	for _, p := range e.events {
		tr, err := lifecycle.Next(e.projected, p.ev)
		if err != nil {
			log.Error(err, "dropping a queued transition that no longer applies", "task", e.nn, "to", p.ev.To)
			e.resolved++
			continue
		}
		e.projected = lifecycle.Apply(e.projected, tr)
		kept = append(kept, p)
	}
	e.events = kept
}

func (e *entry) announce(a Announcement) {
	if len(e.announcements) == maxAnnouncements {
		e.announcements = append(e.announcements[:1], e.announcements[2:]...) // keep the first and the latest
	}
	e.announcements = append(e.announcements, a)
}

// boundResult keeps small results and a marker for large ones.
func boundResult(r json.RawMessage) json.RawMessage {
	if len(r) <= MaxResultInMemory {
		return bytes.Clone(r)
	}
	return fmt.Appendf(nil, `{"truncated":true,"bytes":%d}`, len(r))
}
