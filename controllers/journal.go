package controllers

import (
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

	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// ErrUntracked is returned for a task the Journal does not know (never adopted, or forgotten).
var ErrUntracked = errors.New("task is not tracked by the journal")

// TaskState is the Journal's view of one task: the latest actual state (ahead of PostgreSQL by
// whatever is still in the outbox) plus what this process knows about it.
type TaskState struct {
	NamespacedName types.NamespacedName
	Status         store.Status
	Attempt        int
	Reason         string
	Message        string
	Progress       string
	Result         json.RawMessage
	StartTime      *time.Time
	EndTime        *time.Time
	LastRunTime    *time.Time
	// At is when the latest transition happened.
	At time.Time
	// Checkpoint is the checkpoint read from PostgreSQL when the task was adopted after an
	// operator restart; a run of this attempt resumes from it. Cleared when a new attempt starts.
	Checkpoint json.RawMessage
	// HandedAttempt is the attempt this process last handed to the runner (0 = none). A
	// non-terminal task whose attempt was not handed over is not running anywhere in this
	// process (adopted from the database, or waiting for a retry) and must be started.
	HandedAttempt int
	// ObservedRestartGeneration is the spec.restartGeneration the current attempt honours.
	ObservedRestartGeneration int64
	// Backlog counts transitions and checkpoints not yet written to PostgreSQL.
	Backlog int
	// WriteError is the last error writing this task's backlog ("" after a success).
	WriteError string
	// Fenced is set when PostgreSQL rejected a transition as stale: another writer (a newer
	// leader) owns the task, so this process must not run it.
	Fenced bool
	// Deleted is set once MarkDeleted was written: nothing is left to record.
	Deleted bool
	// Desired is the desired_state last queued for the row (spec.state mirrored for SQL users).
	Desired store.DesiredState
}

// Change is a transition as the Journal's callers describe it; the Journal fills in the
// sequence number and the guard (from status, previous attempt).
type Change struct {
	To              store.Status
	Attempt         int
	Reason          string
	Message         string
	Progress        string
	Result          json.RawMessage
	At              time.Time
	StartTime       *time.Time
	ClearCheckpoint bool
}

// outboxItem is one write waiting for PostgreSQL, in task order.
type outboxItem struct {
	transition *store.Transition
	checkpoint *checkpointWrite
	update     *store.TaskUpdate
	markDelete bool
	queuedAt   time.Time
}

type checkpointWrite struct {
	attempt int
	data    json.RawMessage
}

type journalEntry struct {
	state   TaskState
	lastSeq int64
	outbox  []outboxItem
	// unannounced are the transitions not yet told in a Kubernetes Event (the reconciler
	// announces them together when it writes status).
	unannounced []Announcement
}

// Announcement is one transition as told in an Event.
type Announcement struct {
	From, To store.Status
	Attempt  int
	Reason   string
	Message  string
}

// maxUnannounced bounds the transitions kept for the next Event of one task.
const maxUnannounced = 16

// JournalOptions are the Journal's dependencies.
type JournalOptions struct {
	Store   store.Repository
	Clock   clock.PassiveClock
	Logger  logr.Logger
	Notify  func(types.NamespacedName)
	Metrics *Metrics
	// Writers is the number of goroutines writing to PostgreSQL (each task is written by one
	// at a time, in order).
	Writers int
	// WriteTimeout bounds one database write.
	WriteTimeout time.Duration
	// FlushTimeout bounds the flush of the backlog on shutdown.
	FlushTimeout time.Duration
}

// Journal keeps the actual state of every task this process runs and writes every transition
// to PostgreSQL exactly once, in order, retrying with backoff while the database is away.
//
// It is the runner's Sink and CheckpointSaver, so it must never block on the database: callers
// only touch memory; writers drain the outbox in the background. Unwritten transitions live in
// memory only (a crash loses them, and the next leader resumes from the last recorded state:
// at-least-once execution, exactly-once recorded transitions).
type Journal struct {
	opts  JournalOptions
	log   logr.Logger
	queue workqueue.TypedRateLimitingInterface[string]

	mu    sync.Mutex
	tasks map[string]*journalEntry
}

// NewJournal builds a Journal; Start runs its writers.
func NewJournal(opts JournalOptions) *Journal {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Notify == nil {
		opts.Notify = func(types.NamespacedName) {}
	}
	if opts.Writers <= 0 {
		opts.Writers = 8
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 5 * time.Second
	}
	return &Journal{
		opts: opts,
		log:  opts.Logger.WithName("journal"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "taskpilot-journal"},
		),
		tasks: map[string]*journalEntry{},
	}
}

// Track starts tracking a task from its durable row (freshly created, or adopted after an
// operator restart). Tracking an already tracked task is a no-op that returns its state.
func (j *Journal) Track(nn types.NamespacedName, row *store.Task, observedRestartGeneration int64) TaskState {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.tasks[row.UID]; ok {
		return e.snapshot()
	}
	e := &journalEntry{
		lastSeq: row.LastSeq,
		state: TaskState{
			NamespacedName:            nn,
			Status:                    row.Status,
			Attempt:                   row.Attempt,
			Message:                   row.Message,
			Progress:                  row.Progress,
			Result:                    row.Result,
			StartTime:                 row.StartTime,
			EndTime:                   row.EndTime,
			LastRunTime:               row.LastRunTime,
			At:                        row.UpdatedAt,
			ObservedRestartGeneration: observedRestartGeneration,
			Desired:                   row.DesiredState,
		},
	}
	if row.CheckpointAttempt != nil && *row.CheckpointAttempt == row.Attempt {
		e.state.Checkpoint = row.Checkpoint
	}
	j.tasks[row.UID] = e
	j.opts.Metrics.phaseChanged("", row.Status)
	return e.snapshot()
}

// Get returns the state of a tracked task.
func (j *Journal) Get(uid string) (TaskState, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.tasks[uid]
	if !ok {
		return TaskState{}, false
	}
	return e.snapshot(), true
}

// Record appends a transition decided by the controller (as opposed to one reported by the
// runner): scheduling a retry, failing a spec that can never run, stopping a task that is not
// running in this process.
func (j *Journal) Record(uid string, c Change) error {
	if c.At.IsZero() {
		c.At = j.opts.Clock.Now()
	}
	j.mu.Lock()
	e, ok := j.tasks[uid]
	if !ok {
		j.mu.Unlock()
		return fmt.Errorf("record %s: %w", uid, ErrUntracked)
	}
	if e.state.Fenced || e.state.Deleted {
		j.mu.Unlock()
		return nil
	}
	from, nn := e.state.Status, e.state.NamespacedName
	tr := e.apply(uid, c)
	e.outbox = append(e.outbox, outboxItem{transition: tr, queuedAt: j.opts.Clock.Now()})
	if len(e.unannounced) == maxUnannounced {
		e.unannounced = append(e.unannounced[:1], e.unannounced[2:]...) // keep the first and the latest
	}
	e.unannounced = append(e.unannounced, Announcement{From: from, To: c.To, Attempt: c.Attempt, Reason: c.Reason, Message: c.Message})
	e.state.Backlog = len(e.outbox)
	j.mu.Unlock()

	j.opts.Metrics.transition(from, c.To)
	j.queue.Add(uid)
	j.opts.Notify(nn)
	return nil
}

// Transition implements runner.Sink: every state change of a run is recorded.
func (j *Journal) Transition(t runner.Transition) {
	c := Change{
		To:       statusFromRunner(t.To),
		Attempt:  t.Attempt,
		Reason:   t.Reason,
		Message:  t.Message,
		Progress: t.Progress,
		Result:   t.Result,
		At:       t.At,
	}
	if !t.StartedAt.IsZero() {
		started := t.StartedAt
		c.StartTime = &started
	}
	if err := j.Record(string(t.Key), c); err != nil {
		j.log.Error(err, "dropping a transition of an untracked task", "uid", t.Key, "to", t.To)
	}
}

// SaveCheckpoint implements runner.CheckpointSaver. The checkpoint is written after every
// transition queued before it; while one is waiting, a newer checkpoint of the same attempt
// replaces it, so a database outage costs one pending checkpoint per task, not a pile.
func (j *Journal) SaveCheckpoint(_ context.Context, key runner.Key, attempt int, data json.RawMessage) error {
	if len(data) > store.MaxCheckpointSize {
		return fmt.Errorf("checkpoint of %d bytes exceeds %d: %w", len(data), store.MaxCheckpointSize, store.ErrCheckpointTooLarge)
	}
	uid := string(key)
	j.mu.Lock()
	e, ok := j.tasks[uid]
	if !ok {
		j.mu.Unlock()
		return fmt.Errorf("save checkpoint %s: %w", uid, ErrUntracked)
	}
	if e.state.Fenced || e.state.Deleted {
		j.mu.Unlock()
		return nil
	}
	cw := &checkpointWrite{attempt: attempt, data: append(json.RawMessage(nil), data...)}
	// Replace a checkpoint of the same attempt still waiting at the tail (never the head: a
	// writer may be sending it right now).
	if n := len(e.outbox); n > 1 && e.outbox[n-1].checkpoint != nil && e.outbox[n-1].checkpoint.attempt == attempt {
		e.outbox[n-1].checkpoint = cw
	} else {
		e.outbox = append(e.outbox, outboxItem{checkpoint: cw, queuedAt: j.opts.Clock.Now()})
	}
	e.state.Backlog = len(e.outbox)
	j.mu.Unlock()
	j.queue.Add(uid)
	return nil
}

// SetDesired mirrors spec.state into the row's desired_state column (queued in order with the
// transitions; nothing is written when it did not change).
func (j *Journal) SetDesired(uid string, d store.DesiredState) {
	j.mu.Lock()
	e, ok := j.tasks[uid]
	if !ok || e.state.Desired == d || e.state.Fenced || e.state.Deleted {
		j.mu.Unlock()
		return
	}
	e.state.Desired = d
	e.outbox = append(e.outbox, outboxItem{update: &store.TaskUpdate{DesiredState: &d}, queuedAt: j.opts.Clock.Now()})
	e.state.Backlog = len(e.outbox)
	j.mu.Unlock()
	j.queue.Add(uid)
}

// SetProgress refreshes the progress of a running or paused task between transitions, so SQL
// users see it move (the reconciler calls it at most every progress interval). A progress
// update still waiting at the tail of the outbox is replaced rather than queued twice.
func (j *Journal) SetProgress(uid, progress string) {
	j.mu.Lock()
	e, ok := j.tasks[uid]
	if !ok || progress == "" || e.state.Progress == progress || e.state.Fenced || e.state.Deleted ||
		(e.state.Status != store.StatusRunning && e.state.Status != store.StatusPaused) {
		j.mu.Unlock()
		return
	}
	e.state.Progress = progress
	p := progress
	if n := len(e.outbox); n > 1 && e.outbox[n-1].update != nil && e.outbox[n-1].update.Progress != nil {
		e.outbox[n-1].update.Progress = &p
	} else {
		e.outbox = append(e.outbox, outboxItem{update: &store.TaskUpdate{Progress: &p}, queuedAt: j.opts.Clock.Now()})
	}
	e.state.Backlog = len(e.outbox)
	j.mu.Unlock()
	j.queue.Add(uid)
}

// TakeUnannounced returns the transitions not yet told in an Event, and forgets them.
func (j *Journal) TakeUnannounced(uid string) []Announcement {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.tasks[uid]
	if !ok {
		return nil
	}
	out := e.unannounced
	e.unannounced = nil
	return out
}

// MarkHanded notes that attempt was handed to the runner by this process.
func (j *Journal) MarkHanded(uid string, attempt int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.tasks[uid]; ok {
		e.state.HandedAttempt = attempt
	}
}

// ObserveRestart records that the current attempt honours restartGeneration gen.
func (j *Journal) ObserveRestart(uid string, gen int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.tasks[uid]; ok && gen > e.state.ObservedRestartGeneration {
		e.state.ObservedRestartGeneration = gen
	}
}

// MarkDeleted queues the soft delete of the row, after everything queued before it.
func (j *Journal) MarkDeleted(uid string) error {
	j.mu.Lock()
	e, ok := j.tasks[uid]
	if !ok {
		j.mu.Unlock()
		return fmt.Errorf("mark deleted %s: %w", uid, ErrUntracked)
	}
	for _, it := range e.outbox {
		if it.markDelete {
			j.mu.Unlock()
			return nil
		}
	}
	if !e.state.Deleted {
		e.outbox = append(e.outbox, outboxItem{markDelete: true, queuedAt: j.opts.Clock.Now()})
		e.state.Backlog = len(e.outbox)
	}
	j.mu.Unlock()
	j.queue.Add(uid)
	return nil
}

// Forget drops a task (after its CR is gone). Anything still unwritten is lost, so callers
// forget only flushed tasks or give up deliberately (finalizer timeout).
func (j *Journal) Forget(uid string) {
	j.mu.Lock()
	e, ok := j.tasks[uid]
	delete(j.tasks, uid)
	j.mu.Unlock()
	if ok {
		j.opts.Metrics.phaseChanged(e.state.Status, "")
	}
}

// Backlog returns the number of unwritten items over all tasks.
func (j *Journal) Backlog() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, e := range j.tasks {
		n += len(e.outbox)
	}
	return n
}

// apply turns a Change into the next guarded store.Transition and moves the in-memory state.
// Caller holds j.mu.
func (e *journalEntry) apply(uid string, c Change) *store.Transition {
	e.lastSeq++
	tr := &store.Transition{
		TaskUID:         uid,
		Seq:             e.lastSeq,
		From:            e.state.Status,
		PrevAttempt:     e.state.Attempt,
		To:              c.To,
		Attempt:         c.Attempt,
		Reason:          c.Reason,
		Message:         c.Message,
		At:              c.At,
		Progress:        c.Progress,
		StartTime:       c.StartTime,
		ClearCheckpoint: c.ClearCheckpoint,
	}
	s := &e.state
	if c.Attempt != s.Attempt {
		// A new attempt starts clean: result, end time and the adopted checkpoint belong to
		// the previous one.
		s.Result, s.EndTime, s.StartTime, s.Checkpoint = nil, nil, nil, nil
	}
	if c.ClearCheckpoint {
		s.Checkpoint = nil
	}
	if c.Progress == "" && c.Attempt == s.Attempt {
		// A run resumed after a restart has reported nothing yet: keep what the task last said.
		c.Progress = s.Progress
		tr.Progress = s.Progress
	}
	s.Status, s.Attempt, s.Reason, s.Message, s.Progress, s.At = c.To, c.Attempt, c.Reason, c.Message, c.Progress, c.At
	if c.StartTime != nil {
		s.StartTime = c.StartTime
	}
	if c.To == store.StatusRunning {
		at := c.At
		s.LastRunTime = &at
	}
	if c.To == store.StatusFinished {
		tr.Result = c.Result
		s.Result = c.Result
	}
	if c.To.Terminal() {
		at := c.At
		s.EndTime = &at
	} else {
		s.EndTime = nil
	}
	return tr
}

func (e *journalEntry) snapshot() TaskState {
	s := e.state
	s.Backlog = len(e.outbox)
	return s
}
