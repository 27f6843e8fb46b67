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
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/store"
)

// Options are an operator's settings: Main reads them from its command line (each field is the
// flag of the same name, see BindFlags), Add takes them as they are. NewOptions fills in the
// defaults, the same as the flags'.
type Options struct {
	// DatabaseURL is the PostgreSQL URL (--database-url, default $DATABASE_URL), of a member
	// of the taskpilot_runtime role or of the schema's owner. Required.
	DatabaseURL string
	// MigrateDatabaseURL is the schema owner's URL, for migrations (--migrate-database-url,
	// default $MIGRATE_DATABASE_URL, else DatabaseURL).
	MigrateDatabaseURL string
	// Deployment names this operator deployment among the taskpilot deployments of a cluster
	// (--deployment, default "taskpilot"): a cluster may run several, each with the task
	// types of its own image; each leads, shards and publishes its task types under its name.
	Deployment string
	// Identity is this process as a task owner, unique among running replicas (--identity,
	// default $POD_NAME, else host name and process id).
	Identity string
	// Incarnation is the pod's UID (--incarnation, default $POD_UID): a container restarted in
	// its pod takes its Leases back at once, its previous container having exited. Without it a
	// restarted process waits for its predecessor's Leases to expire (15 s), unless released.
	Incarnation string
	// Namespace holds the leader Lease, the membership Leases and the task-type catalog
	// (--leader-election-namespace, default the pod's namespace, else "default").
	Namespace string
	// LeaderElect: one replica is elected leader (a Lease); without Sharding it adopts the new
	// tasks, with Sharding it assigns them to the replicas. A replica that loses the leadership
	// keeps running the tasks it owns. Off: this process leads alone
	// (--leader-elect).
	LeaderElect bool
	// Sharding: every replica runs tasks; the leader spreads them over the live replicas
	// (--sharding). Needs LeaderElect.
	Sharding bool

	MaxConcurrentTasks      int           // --max-concurrent-tasks
	MemoryBudget            string        // --memory-budget: a quantity (400Mi), 0 for none, or auto
	StopGrace               time.Duration // --stop-grace
	MaxConcurrentReconciles int           // --max-concurrent-reconciles
	StatusWorkers           int           // --status-workers
	JournalWriters          int           // --journal-writers
	JournalMaxBytes         string        // --journal-max-bytes: a quantity (64Mi)
	ProgressUpdateInterval  time.Duration // --progress-update-interval
	ProgressUpdateQPS       float64       // --progress-update-qps
	StatusCoalesceWindow    time.Duration // --status-coalesce-window
	SweepInterval           time.Duration // --sweep-interval
	HistoryRetention        time.Duration // --history-retention (0: forever)
	DBMaxOpenConns          int           // --db-max-open-conns
	DBTimeout               time.Duration // --db-timeout
	StartupDatabaseTimeout  time.Duration // --startup-database-timeout: one attempt; start-up retries without end
	LeaseDuration           time.Duration // --leader-elect-lease-duration
	RenewDeadline           time.Duration // --leader-elect-renew-deadline
	RetryPeriod             time.Duration // --leader-elect-retry-period

	// The process around the operator; Main uses them, Add leaves them to the host program.
	MetricsAddr   string  // --metrics-bind-address
	MetricsSecure bool    // --metrics-secure
	ProbeAddr     string  // --health-probe-bind-address
	PprofAddr     string  // --pprof-bind-address
	Kubeconfig    string  // --kubeconfig
	KubeAPIQPS    float64 // --kube-api-qps
	KubeAPIBurst  int     // --kube-api-burst

	// Metrics registers the operator's metrics (default: controller-runtime's registry, which
	// the manager serves). A program that adds two operators sets its own for one of them.
	Metrics prometheus.Registerer
}

// NewOptions returns the defaults. Each comes from the component's exported Default constant,
// so every setting has one default.
func NewOptions() Options {
	return Options{
		Deployment:              controllers.DefaultDeployment,
		MaxConcurrentTasks:      engine.DefaultMaxConcurrent,
		MemoryBudget:            "auto",
		StopGrace:               engine.DefaultStopGrace,
		MaxConcurrentReconciles: controllers.DefaultMaxConcurrentReconciles,
		StatusWorkers:           controllers.DefaultStatusWorkers,
		JournalWriters:          journal.DefaultWriters,
		JournalMaxBytes:         resource.NewQuantity(journal.DefaultMaxBacklogBytes, resource.BinarySI).String(),
		ProgressUpdateInterval:  controllers.DefaultProgressInterval,
		ProgressUpdateQPS:       controllers.DefaultProgressUpdateQPS,
		StatusCoalesceWindow:    controllers.DefaultStatusCoalesceWindow,
		SweepInterval:           controllers.DefaultSweepInterval,
		DBMaxOpenConns:          store.DefaultMaxOpenConns,
		DBTimeout:               controllers.DefaultDatabaseTimeout,
		StartupDatabaseTimeout:  10 * time.Second,
		LeaseDuration:           membership.DefaultLeaseDuration,
		RenewDeadline:           membership.DefaultRenewDeadline,
		RetryPeriod:             membership.DefaultRetryPeriod,
		MetricsAddr:             ":8443",
		MetricsSecure:           true,
		ProbeAddr:               ":8081",
		KubeAPIQPS:              50,
		KubeAPIBurst:            100,
	}
}

// BindFlags defines a flag for every field, with o's values as defaults. Secrets are never
// flag defaults (the usage text prints defaults): the database URL falls back to
// $DATABASE_URL in Complete.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address of the Prometheus metrics endpoint (\"0\" disables it).")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", o.MetricsSecure, "Serve metrics over HTTPS to callers the API server authenticates and allows to get /metrics (the metrics-reader ClusterRole). Off: plain HTTP to anyone who reaches the address (make dev, on loopback).")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address of the /healthz and /readyz endpoints.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", o.PprofAddr, "Address of the Go pprof endpoints (empty: off). For profiling only.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect a leader through a Lease (on in the Deployment): without --sharding the leader adopts new tasks, with it the leader assigns them to the replicas; a replica that stops leading keeps running the tasks it owns.")
	fs.BoolVar(&o.Sharding, "sharding", o.Sharding, "Spread the tasks over every replica (consistent hashing of the task UID over the live replicas' membership Leases; the elected leader writes the assignment labels). Needs --leader-elect. Off: the leader runs every task.")
	fs.StringVar(&o.Deployment, "deployment", o.Deployment, "Name of this operator deployment among the taskpilot deployments of the cluster (each with its own task types): its leader Lease, its replicas' membership and the TaskTypes it publishes carry it.")
	fs.StringVar(&o.Namespace, "leader-election-namespace", o.Namespace, "Namespace of the leader-election Lease, of the membership Leases and of the task-type catalog (default: the pod's namespace, else \"default\").")
	fs.StringVar(&o.Incarnation, "incarnation", o.Incarnation, "This pod's UID, so that a container restarted in its pod takes its Leases back at once (default: $POD_UID; empty: a restart waits for its previous Leases to expire).")
	fs.StringVar(&o.Identity, "identity", o.Identity, "This process's name as a task owner, unique among running replicas: its membership Lease and the owner column of the rows it runs (default: $POD_NAME, else host name and process id).")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig (default: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config).")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/db (default: $DATABASE_URL): a member of the taskpilot_runtime role, or the schema's owner. Never logged or printed with its password.")
	fs.StringVar(&o.MigrateDatabaseURL, "migrate-database-url", "", "PostgreSQL URL of the schema's owner, which migrates it at start-up (default: $MIGRATE_DATABASE_URL, else --database-url). `taskpilot migrate` migrates and exits (an init container).")
	fs.IntVar(&o.DBMaxOpenConns, "db-max-open-conns", o.DBMaxOpenConns, "Maximum open PostgreSQL connections.")
	fs.DurationVar(&o.DBTimeout, "db-timeout", o.DBTimeout, "Deadline of one database call.")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Queries per second to the Kubernetes API (client-side limit).")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of queries to the Kubernetes API.")
	fs.IntVar(&o.MaxConcurrentTasks, "max-concurrent-tasks", o.MaxConcurrentTasks, "Tasks running at once; more wait in FIFO order as Pending. Paused tasks do not count.")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles, "Workers acting on spec changes (pause, resume, stop, restart, delete). They never wait on API writes.")
	fs.IntVar(&o.StatusWorkers, "status-workers", o.StatusWorkers, "Workers writing status. Each waits on an API write, so this is how many are in flight: they share the API server with users' own patches, so more make statuses catch up sooner after a burst and delay the patches' way to the runner.")
	fs.IntVar(&o.JournalWriters, "journal-writers", o.JournalWriters, "Goroutines writing transitions to PostgreSQL.")
	fs.StringVar(&o.JournalMaxBytes, "journal-max-bytes", o.JournalMaxBytes, "Memory the changes waiting for PostgreSQL may hold (during an outage): past it, what runs goes on and is kept, but starts, pauses and resumes wait, and the tasks say why.")
	fs.DurationVar(&o.StopGrace, "stop-grace", o.StopGrace, "How long a stopped task may ignore cancellation before it is reported Stopped anyway.")
	fs.DurationVar(&o.ProgressUpdateInterval, "progress-update-interval", o.ProgressUpdateInterval, "How often a running task's progress is copied into its status and row.")
	fs.Float64Var(&o.ProgressUpdateQPS, "progress-update-qps", o.ProgressUpdateQPS, "Budget of progress-only status writes per second over all tasks.")
	fs.DurationVar(&o.StatusCoalesceWindow, "status-coalesce-window", o.StatusCoalesceWindow, "A fresh task's first status write waits this long, so a task that finishes sooner costs one write (0: off).")
	fs.DurationVar(&o.SweepInterval, "sweep-interval", o.SweepInterval, "How often rows are compared with the live BackgroundTasks (rows of deleted objects are soft-deleted, tasks of gone owners adopted).")
	fs.DurationVar(&o.HistoryRetention, "history-retention", o.HistoryRetention, "Purge tasks soft-deleted longer than this ago, with their history, in small batches (0: keep forever).")
	fs.StringVar(&o.MemoryBudget, "memory-budget", o.MemoryBudget, "Memory that admitted runs may reserve, e.g. 400Mi (0: no budget; auto: 60% of the container's memory limit from GOMEMLIMIT or the cgroup, none without a limit). Runs beyond it wait Pending.")
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
