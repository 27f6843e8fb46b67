package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"

	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/internal/version"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// Defaults of Options; main's flags use them too, so there is one value for each.
const (
	DefaultMaxConcurrentReconciles = 16
	// DefaultQueueInterval is Settings.QueueInterval's default.
	DefaultQueueInterval = 250 * time.Millisecond
	// DefaultStatusWorkers bounds the status writes in flight. Status writes share the API
	// server with the users' own patches and with the watch that brings their changes here, so
	// fewer in flight let a spec change reach the runner sooner, and more let statuses catch up
	// sooner after a burst (docs/benchmarks.md has the trade-off): act first, report later.
	DefaultStatusWorkers        = 8
	DefaultDatabaseTimeout      = 5 * time.Second
	DefaultProgressInterval     = 10 * time.Second
	DefaultProgressUpdateQPS    = 20
	DefaultStatusCoalesceWindow = 100 * time.Millisecond
	DefaultSweepInterval        = time.Minute
	// DefaultDeployment is the name of the operator deployment when only one runs (the
	// zero-configuration case).
	DefaultDeployment = "taskpilot"
)

// Settings are an operator's tunables: what the taskpilot binary's flags set (the flag of each
// is named in operator.Options.BindFlags), and what operator.Options embeds. Zero values take the
// defaults above and those of the component packages.
type Settings struct {
	// Deployment names this operator deployment among the taskpilot deployments of a cluster
	// (DefaultDeployment when empty): its replicas' membership Leases carry it, its sharder
	// spreads tasks over them only, and it publishes the task types it serves under it.
	Deployment string
	// Identity names this process as a task owner; it must be unique among live processes
	// (the pod name). Required.
	Identity string
	// Incarnation tells this process from an earlier one of the same Identity that was the
	// same pod (its UID): one of those has exited, so its Leases are taken back at once. Empty:
	// a restarted process waits for its predecessor's Leases to expire, unless released.
	Incarnation string
	// Namespace holds the leader Lease, the membership Leases and the task-type catalog (the
	// operator's own namespace). Required.
	Namespace string
	// LeaderElect elects one replica of the deployment as its leader (a Lease named
	// LeaderElectionID in Namespace): without sharding the leader adopts the tasks nobody runs,
	// with sharding it assigns them to the replicas, and it fires schedules and publishes the
	// task types. Losing the leadership never stops a task: every replica keeps running the
	// tasks it owns and campaigns again. Off: this process leads alone.
	LeaderElect bool
	// Sharding makes every replica active: each runs the tasks the elected sharder assigns to
	// it and caches only those. Needs LeaderElect, for the sharder. Off: the elected leader
	// adopts every new task.
	Sharding bool
	// MaxConcurrentTasks bounds the runs holding a runner slot (engine.DefaultMaxConcurrent).
	MaxConcurrentTasks int
	// MemoryBudget bounds the memory (bytes) reserved by admitted runs; 0 means none.
	MemoryBudget int64
	// StopGrace is how long a stopped run may ignore cancellation.
	StopGrace time.Duration
	// MaxConcurrentReconciles is the number of workers acting on spec changes (they never
	// write to the API server, so they are never held up by it).
	MaxConcurrentReconciles int
	// StatusWorkers is the number of workers writing status (each waits on an API write).
	StatusWorkers int
	// JournalWriters is the number of goroutines taking tasks' changes to PostgreSQL.
	JournalWriters int
	// JournalMaxBatch bounds the transitions of as many tasks written in one statement
	// (journal.DefaultMaxBatch when 0; 1 writes each on its own).
	JournalMaxBatch int
	// JournalMaxBytes bounds the memory of changes waiting for PostgreSQL (during an outage):
	// past it, starts, pauses and resumes wait (journal.DefaultMaxBacklogBytes when 0).
	JournalMaxBytes int64
	// DatabaseTimeout bounds one database call.
	DatabaseTimeout time.Duration
	// ProgressUpdateInterval is how often a running task's progress is copied into its status
	// and row.
	ProgressUpdateInterval time.Duration
	// ProgressUpdateQPS bounds progress-only status writes over all tasks.
	ProgressUpdateQPS float64
	// StatusCoalesceWindow defers the first status write of a fresh run, so a task that
	// finishes within it costs one write.
	StatusCoalesceWindow time.Duration
	// SweepInterval is how often rows are compared with the live BackgroundTasks: rows whose
	// object is gone are soft-deleted, rows of gone owners are adopted.
	SweepInterval time.Duration
	// HistoryRetention purges rows (with their history) soft-deleted longer than this ago, in
	// small batches, on each sweep. 0 keeps them forever.
	HistoryRetention time.Duration
	// LeaseDuration, RenewDeadline and RetryPeriod time the leader Lease and the membership
	// (see package membership).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// QueueInterval is how often a replica runs an admission round of each queue its tasks
	// wait in (default 250ms): the longest a task waits to learn that another replica's task
	// gave its place back. A place given back on this replica starts a round at once.
	QueueInterval time.Duration
}

// Options configure Setup: the settings, and what the controllers run on.
type Options struct {
	Settings
	// Store is the PostgreSQL record (required).
	Store *store.Repository
	// Registry holds the task types (required).
	Registry *runner.Registry
	// Prepare readies the database before this process owns tasks (operator: the schema
	// migration); it is retried with backoff until it succeeds. Nil: nothing to prepare.
	Prepare func(context.Context) error
	// Namespaces restricts the sharder's cache of every task to these namespaces, as the
	// manager's cache is restricted (tests). Empty: all namespaces, the operator's scope.
	Namespaces []string
	// Metrics registers taskpilot's metrics (controller-runtime's registry in main; a fresh
	// registry in tests, where several operators share a process). Nil: none.
	Metrics prometheus.Registerer
	// TracerProvider receives a span per execution of a task and per schedule firing (see
	// docs/operations.md, Tracing). Nil: nothing is traced.
	TracerProvider trace.TracerProvider
	// Clock defaults to the real clock.
	Clock clock.WithTicker
}

// tracer is the instrumentation scope of taskpilot's spans (nil without a provider).
func (o Options) tracer() trace.Tracer {
	if o.TracerProvider == nil {
		return nil
	}
	return o.TracerProvider.Tracer(InstrumentationScope, trace.WithInstrumentationVersion(version.Get().Version))
}

// InstrumentationScope names the tracer of taskpilot's spans.
const InstrumentationScope = "github.com/taskpilot/taskpilot"

func (o Options) withDefaults() (Options, error) {
	if o.Store == nil || o.Registry == nil || o.Identity == "" || o.Namespace == "" {
		return o, errors.New("controllers: Store, Registry, Identity and Namespace are required")
	}
	if errs := validation.IsValidLabelValue(o.Identity); o.Sharding && len(errs) > 0 {
		return o, fmt.Errorf("controllers: with sharding the identity %q names the replica in a label: %s", o.Identity, strings.Join(errs, "; "))
	}
	o.LeaseDuration = orDuration(o.LeaseDuration, membership.DefaultLeaseDuration)
	o.RenewDeadline = orDuration(o.RenewDeadline, membership.DefaultRenewDeadline)
	o.RetryPeriod = orDuration(o.RetryPeriod, membership.DefaultRetryPeriod)
	o.StopGrace = orDuration(o.StopGrace, engine.DefaultStopGrace)
	o.DatabaseTimeout = orDuration(o.DatabaseTimeout, DefaultDatabaseTimeout)
	o.ProgressUpdateInterval = orDuration(o.ProgressUpdateInterval, DefaultProgressInterval)
	o.StatusCoalesceWindow = max(o.StatusCoalesceWindow, 0)
	o.SweepInterval = orDuration(o.SweepInterval, DefaultSweepInterval)
	o.QueueInterval = orDuration(o.QueueInterval, DefaultQueueInterval)
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if o.StatusWorkers <= 0 {
		o.StatusWorkers = DefaultStatusWorkers
	}
	if o.JournalWriters <= 0 {
		o.JournalWriters = journal.DefaultWriters
	}
	if o.ProgressUpdateQPS <= 0 {
		o.ProgressUpdateQPS = DefaultProgressUpdateQPS
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o, nil
}

// deployment is Deployment or its default.
func (o Settings) deployment() string {
	if o.Deployment == "" {
		return DefaultDeployment
	}
	return o.Deployment
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
