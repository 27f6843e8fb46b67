package operator

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// config holds the command-line settings.
type config struct {
	metricsAddr, probeAddr     string
	pprofAddr                  string
	leaderElect                bool
	sharding                   bool
	leaderElectionNamespace    string
	identity                   string
	kubeconfig                 string
	databaseURL                string
	dbMaxOpenConns             int
	dbTimeout                  time.Duration
	kubeAPIQPS                 float64
	kubeAPIBurst               int
	maxConcurrentTasks         int
	maxConcurrentReconciles    int
	statusWorkers              int
	journalWriters             int
	stopGrace                  time.Duration
	progressInterval           time.Duration
	progressUpdateQPS          float64
	statusCoalesceWindow       time.Duration
	sweepInterval              time.Duration
	historyRetention           time.Duration
	memoryBudget               string
	leaseDuration              time.Duration
	renewDeadline              time.Duration
	retryPeriod                time.Duration
	startupDatabaseWaitTimeout time.Duration
}

// parseFlags reads args. Defaults come from the components' exported Default constants, so each
// setting has one default. Secrets are never flag defaults (the usage text prints defaults):
// the database URL falls back to $DATABASE_URL after parsing.
func parseFlags(fs *flag.FlagSet, args []string) (config, zap.Options, error) {
	var c config
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint (\"0\" disables it).")
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.StringVar(&c.pprofAddr, "pprof-bind-address", "", "Address of the Go pprof endpoints (empty: off). For profiling only.")
	fs.BoolVar(&c.leaderElect, "leader-elect", false, "Elect a leader through a Lease so that only one replica runs tasks (on in the Deployment).")
	fs.BoolVar(&c.sharding, "sharding", false, "Spread the tasks over every replica (consistent hashing of the task UID over the live replicas' membership Leases; the elected leader writes the assignment labels). Needs --leader-elect. Off: the leader runs every task.")
	fs.StringVar(&c.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease and of the membership Leases (default: the pod's namespace, else \"default\").")
	fs.StringVar(&c.identity, "identity", "", "This process's name as a task owner, unique among running replicas: its membership Lease and the owner column of the rows it runs (default: $POD_NAME, else host name and process id).")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "Path to a kubeconfig (default: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config).")
	fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/db (default: $DATABASE_URL). Never logged or printed with its password.")
	fs.IntVar(&c.dbMaxOpenConns, "db-max-open-conns", store.DefaultMaxOpenConns, "Maximum open PostgreSQL connections.")
	fs.DurationVar(&c.dbTimeout, "db-timeout", controllers.DefaultDatabaseTimeout, "Deadline of one database call.")
	fs.Float64Var(&c.kubeAPIQPS, "kube-api-qps", 50, "Queries per second to the Kubernetes API (client-side limit).")
	fs.IntVar(&c.kubeAPIBurst, "kube-api-burst", 100, "Burst of queries to the Kubernetes API.")
	fs.IntVar(&c.maxConcurrentTasks, "max-concurrent-tasks", runner.DefaultMaxConcurrent, "Tasks running at once; more wait in FIFO order as Pending. Paused tasks do not count.")
	fs.IntVar(&c.maxConcurrentReconciles, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "Workers acting on spec changes (pause, resume, stop, restart, delete). They never wait on API writes.")
	fs.IntVar(&c.statusWorkers, "status-workers", controllers.DefaultStatusWorkers, "Workers writing status. Each waits on an API write, so this is how many are in flight: they share the API server with users' own patches, so more make statuses catch up sooner after a burst and delay the patches' way to the runner.")
	fs.IntVar(&c.journalWriters, "journal-writers", journal.DefaultWriters, "Goroutines writing transitions to PostgreSQL.")
	fs.DurationVar(&c.stopGrace, "stop-grace", runner.DefaultStopGrace, "How long a stopped task may ignore cancellation before it is reported Stopped anyway.")
	fs.DurationVar(&c.progressInterval, "progress-update-interval", controllers.DefaultProgressInterval, "How often a running task's progress is copied into its status and row.")
	fs.Float64Var(&c.progressUpdateQPS, "progress-update-qps", controllers.DefaultProgressUpdateQPS, "Budget of progress-only status writes per second over all tasks.")
	fs.DurationVar(&c.statusCoalesceWindow, "status-coalesce-window", controllers.DefaultStatusCoalesceWindow, "A fresh task's first status write waits this long, so a task that finishes sooner costs one write (0: off).")
	fs.DurationVar(&c.sweepInterval, "sweep-interval", controllers.DefaultSweepInterval, "How often rows are compared with the live BackgroundTasks (rows of deleted objects are soft-deleted, tasks of gone owners adopted).")
	fs.DurationVar(&c.historyRetention, "history-retention", 0, "Purge tasks soft-deleted longer than this ago, with their history, in small batches (0: keep forever).")
	fs.StringVar(&c.memoryBudget, "memory-budget", "auto", "Memory that admitted runs may reserve, e.g. 400Mi (0: no budget; auto: 60% of the container's memory limit from GOMEMLIMIT or the cgroup, none without a limit). Runs beyond it wait Pending.")
	fs.DurationVar(&c.leaseDuration, "leader-elect-lease-duration", membership.DefaultLeaseDuration, "How long others wait after a replica's last Lease renewal before they take over its tasks (or its leadership): a crashed replica's tasks resume after this.")
	fs.DurationVar(&c.renewDeadline, "leader-elect-renew-deadline", membership.DefaultRenewDeadline, "How long a replica keeps running its tasks (and leading) after its last successful Lease renewal; must be less than the lease duration.")
	fs.DurationVar(&c.retryPeriod, "leader-elect-retry-period", membership.DefaultRetryPeriod, "How often Leases are renewed and acquisition is tried.")
	fs.DurationVar(&c.startupDatabaseWaitTimeout, "startup-database-timeout", 10*time.Second, "How long start-up waits for PostgreSQL before giving up.")
	zopts := zap.Options{Development: false}
	zopts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, zopts, err
	}
	c.databaseURL = cmp.Or(c.databaseURL, os.Getenv("DATABASE_URL"))
	if c.identity == "" {
		host, _ := os.Hostname()
		c.identity = cmp.Or(os.Getenv("POD_NAME"), fmt.Sprintf("%s-%d", cmp.Or(host, "taskpilot"), os.Getpid()))
	}
	if c.leaderElectionNamespace == "" {
		c.leaderElectionNamespace = podNamespace()
	}
	return c, zopts, nil
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
