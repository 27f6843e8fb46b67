package operator

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/store"
)

// Settings are the tunables taskpilot's controllers read (package controllers): concurrency,
// leader election, sharding, budgets, intervals and timeouts.
type Settings = controllers.Settings

// Options are an operator's settings, what New takes: the tunables of package controllers
// (Settings, embedded: MaxConcurrentTasks, LeaderElect, Sharding, ...), the database, and where its
// metrics go. Main reads them from its command line (each field is the flag named in
// BindFlags); NewOptions fills in the defaults, the same as the flags'.
type Options struct {
	Settings

	// DatabaseURL is the PostgreSQL URL (--database-url, default $DATABASE_URL), of a member
	// of the taskpilot_runtime role or of the schema's owner. Required.
	DatabaseURL string
	// MigrateDatabaseURL is the schema owner's URL, for migrations (--migrate-database-url,
	// default $MIGRATE_DATABASE_URL, else DatabaseURL).
	MigrateDatabaseURL string
	// DatabaseMaxOpenConns bounds the open PostgreSQL connections (--db-max-open-conns).
	DatabaseMaxOpenConns int
	// StartupDatabaseTimeout bounds one attempt at preparing PostgreSQL at start-up (connect,
	// wait for another replica's migration, migrate); start-up retries without end
	// (--startup-database-timeout).
	StartupDatabaseTimeout time.Duration
	// Metrics registers the operator's metrics (default: controller-runtime's registry, which
	// the manager serves). A program that adds two operators sets its own for one of them.
	Metrics prometheus.Registerer
	// TracerProvider receives a span per execution of a task and per schedule firing (nil:
	// nothing is traced). Main builds one from --otlp-endpoint and the OTEL_* variables; a
	// program that has its own passes that.
	TracerProvider trace.TracerProvider
}

// ProcessOptions are what a whole operator process needs around the operator: Main and Run
// read them from the command line; a program that adds the operator to its own manager has its
// own.
type ProcessOptions struct {
	MetricsAddr   string  // --metrics-bind-address
	MetricsSecure bool    // --metrics-secure
	ProbeAddr     string  // --health-probe-bind-address
	PprofAddr     string  // --pprof-bind-address
	Kubeconfig    string  // --kubeconfig
	KubeAPIQPS    float64 // --kube-api-qps
	KubeAPIBurst  int     // --kube-api-burst
	OTLPEndpoint  string  // --otlp-endpoint
}

// NewOptions returns the defaults. Each comes from the component's exported Default constant,
// so every setting has one default. The memory budget's default is a share of the container's
// memory limit (AutoMemoryBudget).
func NewOptions() Options {
	return Options{
		Settings: Settings{
			Deployment:              controllers.DefaultDeployment,
			MaxConcurrentTasks:      engine.DefaultMaxConcurrent,
			MemoryBudget:            AutoMemoryBudget(),
			StopGrace:               engine.DefaultStopGrace,
			MaxConcurrentReconciles: controllers.DefaultMaxConcurrentReconciles,
			StatusWorkers:           controllers.DefaultStatusWorkers,
			JournalWriters:          journal.DefaultWriters,
			JournalMaxBatch:         journal.DefaultMaxBatch,
			JournalMaxBytes:         journal.DefaultMaxBacklogBytes,
			ProgressUpdateInterval:  controllers.DefaultProgressInterval,
			ProgressUpdateQPS:       controllers.DefaultProgressUpdateQPS,
			StatusCoalesceWindow:    controllers.DefaultStatusCoalesceWindow,
			SweepInterval:           controllers.DefaultSweepInterval,
			DatabaseTimeout:         controllers.DefaultDatabaseTimeout,
			LeaseDuration:           membership.DefaultLeaseDuration,
			RenewDeadline:           membership.DefaultRenewDeadline,
			RetryPeriod:             membership.DefaultRetryPeriod,
		},
		DatabaseMaxOpenConns:   store.DefaultMaxOpenConns,
		StartupDatabaseTimeout: 10 * time.Second,
	}
}

// NewProcessOptions returns the process defaults.
func NewProcessOptions() ProcessOptions {
	return ProcessOptions{MetricsAddr: ":8443", MetricsSecure: true, ProbeAddr: ":8081", KubeAPIQPS: 50, KubeAPIBurst: 100}
}

// BindFlags defines the process's flags, with p's values as defaults.
func (p *ProcessOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&p.MetricsAddr, "metrics-bind-address", p.MetricsAddr, "Address of the Prometheus metrics endpoint (\"0\" disables it).")
	fs.BoolVar(&p.MetricsSecure, "metrics-secure", p.MetricsSecure, "Serve metrics over HTTPS to callers the API server authenticates and allows to get /metrics (the metrics-reader ClusterRole). Off: plain HTTP to anyone who reaches the address (make dev, on loopback).")
	fs.StringVar(&p.ProbeAddr, "health-probe-bind-address", p.ProbeAddr, "Address of the /healthz and /readyz endpoints.")
	fs.StringVar(&p.PprofAddr, "pprof-bind-address", p.PprofAddr, "Address of the Go pprof endpoints (empty: off). For profiling only.")
	fs.StringVar(&p.Kubeconfig, "kubeconfig", p.Kubeconfig, "Path to a kubeconfig (default: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config).")
	fs.Float64Var(&p.KubeAPIQPS, "kube-api-qps", p.KubeAPIQPS, "Queries per second to the Kubernetes API (client-side limit).")
	fs.IntVar(&p.KubeAPIBurst, "kube-api-burst", p.KubeAPIBurst, "Burst of queries to the Kubernetes API.")
	fs.StringVar(&p.OTLPEndpoint, "otlp-endpoint", p.OTLPEndpoint, "OTLP endpoint URL that receives the traces, e.g. http://otel-collector:4317 (default: $OTEL_EXPORTER_OTLP_ENDPOINT; neither: no tracing). The other OTEL_* variables apply (docs/operations.md, Tracing).")
}

// BindFlags defines a flag for every field, with o's values as defaults; quantities are parsed
// once, here. Secrets are never flag defaults (the usage text prints defaults): the database
// URL falls back to $DATABASE_URL in Complete.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect a leader through a Lease (on in the Deployment): without --sharding the leader adopts new tasks, with it the leader assigns them to the replicas; a replica that stops leading keeps running the tasks it owns.")
	fs.BoolVar(&o.Sharding, "sharding", o.Sharding, "Spread the tasks over every replica (consistent hashing of the task UID over the live replicas' membership Leases; the elected leader writes the assignment labels). Needs --leader-elect. Off: the leader runs every task.")
	fs.StringVar(&o.Deployment, "deployment", o.Deployment, "Name of this operator deployment among the taskpilot deployments of the cluster (each with its own task types): its leader Lease, its replicas' membership and the TaskTypes it publishes carry it.")
	fs.StringVar(&o.Namespace, "leader-election-namespace", o.Namespace, "Namespace of the leader-election Lease, of the membership Leases and of the task-type catalog (default: the pod's namespace, else \"default\").")
	fs.StringVar(&o.Incarnation, "incarnation", o.Incarnation, "This pod's UID, so that a container restarted in its pod takes its Leases back at once (default: $POD_UID; empty: a restart waits for its previous Leases to expire).")
	fs.StringVar(&o.Identity, "identity", o.Identity, "This process's name as a task owner, unique among running replicas: its membership Lease and the owner column of the rows it runs (default: $POD_NAME, else host name and process id).")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/db (default: $DATABASE_URL): a member of the taskpilot_runtime role, or the schema's owner. Never logged or printed with its password.")
	fs.StringVar(&o.MigrateDatabaseURL, "migrate-database-url", "", "PostgreSQL URL of the schema's owner, which migrates it at start-up (default: $MIGRATE_DATABASE_URL, else --database-url). `taskpilot migrate` migrates and exits (an init container).")
	fs.IntVar(&o.DatabaseMaxOpenConns, "db-max-open-conns", o.DatabaseMaxOpenConns, "Maximum open PostgreSQL connections.")
	fs.DurationVar(&o.DatabaseTimeout, "db-timeout", o.DatabaseTimeout, "Deadline of one database call.")
	fs.IntVar(&o.MaxConcurrentTasks, "max-concurrent-tasks", o.MaxConcurrentTasks, "Tasks running at once; more wait in FIFO order as Pending. Paused tasks do not count.")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles, "Workers acting on spec changes (pause, resume, stop, restart, delete). They never wait on API writes.")
	fs.IntVar(&o.StatusWorkers, "status-workers", o.StatusWorkers, "Workers writing status. Each waits on an API write, so this is how many are in flight: they share the API server with users' own patches, so more make statuses catch up sooner after a burst and delay the patches' way to the runner.")
	fs.IntVar(&o.JournalWriters, "journal-writers", o.JournalWriters, "Goroutines taking tasks' changes to PostgreSQL: each writes checkpoints and progress itself and hands transitions to the batch writers (half as many), which write those of many tasks in one statement.")
	fs.IntVar(&o.JournalMaxBatch, "journal-max-batch", o.JournalMaxBatch, "Transitions (of as many tasks) written to PostgreSQL in one statement, each still guarded and fenced on its own row; 1 writes each on its own.")
	fs.Var((*quantityFlag)(&o.JournalMaxBytes), "journal-max-bytes", "Memory the changes waiting for PostgreSQL may hold (during an outage): past it, what runs goes on and is kept, but starts, pauses and resumes wait, and the tasks say why.")
	fs.DurationVar(&o.StopGrace, "stop-grace", o.StopGrace, "How long a stopped task may ignore cancellation before it is reported Stopped anyway.")
	fs.DurationVar(&o.ProgressUpdateInterval, "progress-update-interval", o.ProgressUpdateInterval, "How often a running task's progress is copied into its status and row.")
	fs.Float64Var(&o.ProgressUpdateQPS, "progress-update-qps", o.ProgressUpdateQPS, "Budget of progress-only status writes per second over all tasks.")
	fs.DurationVar(&o.StatusCoalesceWindow, "status-coalesce-window", o.StatusCoalesceWindow, "A fresh task's first status write waits this long, so a task that finishes sooner costs one write (0: off).")
	fs.DurationVar(&o.SweepInterval, "sweep-interval", o.SweepInterval, "How often rows are compared with the live BackgroundTasks (rows of deleted objects are soft-deleted, tasks of gone owners adopted).")
	fs.DurationVar(&o.HistoryRetention, "history-retention", o.HistoryRetention, "Purge tasks soft-deleted longer than this ago, with their history, in small batches (0: keep forever).")
	fs.Var((*budgetFlag)(&o.MemoryBudget), "memory-budget", "Memory that admitted runs may reserve, e.g. 400Mi (0: no budget; auto: 60% of the container's memory limit from GOMEMLIMIT or the cgroup, none without a limit). Runs beyond it wait Pending.")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "How long others wait after a replica's last Lease renewal before they take over its tasks (or its leadership): a crashed replica's tasks resume after this.")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "How long a replica keeps running its tasks (and leading) after its last successful Lease renewal; must be less than the lease duration.")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "How often Leases are renewed and acquisition is tried.")
	fs.DurationVar(&o.StartupDatabaseTimeout, "startup-database-timeout", o.StartupDatabaseTimeout, "How long one attempt at preparing PostgreSQL at start-up (connecting, waiting for another replica's migration, migrating) may take; failed attempts are retried with backoff, the process staying up and not ready.")
}

// Complete fills what the environment decides: the database URL from $DATABASE_URL, the
// identity from $POD_NAME (else host and pid), the namespace from the pod's. Then it checks
// the combination.
func (o *Options) Complete() error {
	o.DatabaseURL = cmp.Or(o.DatabaseURL, os.Getenv("DATABASE_URL"))
	o.MigrateDatabaseURL = cmp.Or(o.MigrateDatabaseURL, os.Getenv("MIGRATE_DATABASE_URL"), o.DatabaseURL)
	o.Deployment = cmp.Or(o.Deployment, controllers.DefaultDeployment)
	if o.Identity == "" {
		host, _ := os.Hostname()
		o.Identity = cmp.Or(os.Getenv("POD_NAME"), fmt.Sprintf("%s-%d", cmp.Or(host, "taskpilot"), os.Getpid()))
	}
	o.Incarnation = cmp.Or(o.Incarnation, os.Getenv("POD_UID"))
	if o.Namespace == "" {
		o.Namespace = podNamespace()
	}
	switch {
	case o.Sharding && !o.LeaderElect:
		return errors.New("--sharding needs --leader-elect: the elected leader assigns the tasks to the replicas")
	case o.DatabaseURL == "":
		return errors.New("no database configured: set --database-url or DATABASE_URL, for example postgres://taskpilot:secret@localhost:5432/taskpilot (make dev starts a local one)")
	}
	return nil
}

// serviceAccountNamespace is where Kubernetes mounts the pod's namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// podNamespace is the pod's namespace ($POD_NAMESPACE, else the service account's), or
// "default" outside a cluster.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return "default"
}
