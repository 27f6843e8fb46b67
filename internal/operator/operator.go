package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	crconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// config holds the command-line settings.
type config struct {
	metricsAddr, probeAddr     string
	pprofAddr                  string
	leaderElect                bool
	leaderElectionNamespace    string
	databaseURL                string
	dbMaxOpenConns             int
	dbTimeout                  time.Duration
	kubeAPIQPS                 float64
	kubeAPIBurst               int
	maxConcurrentTasks         int
	maxConcurrentReconciles    int
	journalWriters             int
	stopGrace                  time.Duration
	progressInterval           time.Duration
	progressUpdateQPS          float64
	statusCoalesceWindow       time.Duration
	leaseDuration              time.Duration
	renewDeadline              time.Duration
	retryPeriod                time.Duration
	finalizerTimeout           time.Duration
	startupDatabaseWaitTimeout time.Duration
}

func parseFlags(fs *flag.FlagSet, args []string) (config, zap.Options, error) {
	var c config
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint (\"0\" disables it).")
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.StringVar(&c.pprofAddr, "pprof-bind-address", "", "Address of the Go pprof endpoints (empty: off). For profiling only.")
	fs.BoolVar(&c.leaderElect, "leader-elect", false, "Elect a leader through a Lease so that only one replica runs tasks (on in the Deployment).")
	fs.StringVar(&c.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's namespace).")
	fs.StringVar(&c.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL, postgres://user:password@host:5432/db (default $DATABASE_URL). Never logged with its password.")
	fs.IntVar(&c.dbMaxOpenConns, "db-max-open-conns", 16, "Maximum open PostgreSQL connections.")
	fs.DurationVar(&c.dbTimeout, "db-timeout", 5*time.Second, "Deadline of one database call.")
	fs.Float64Var(&c.kubeAPIQPS, "kube-api-qps", 50, "Queries per second to the Kubernetes API (client-side limit).")
	fs.IntVar(&c.kubeAPIBurst, "kube-api-burst", 100, "Burst of queries to the Kubernetes API.")
	fs.IntVar(&c.maxConcurrentTasks, "max-concurrent-tasks", runner.DefaultMaxConcurrent, "Tasks running at once; more wait in FIFO order as Pending. Paused tasks do not count.")
	fs.IntVar(&c.maxConcurrentReconciles, "max-concurrent-reconciles", 16, "Reconcile workers. Each waits on API writes, so this is also how many writes are in flight; about 16 saturates a small API server.")
	fs.IntVar(&c.journalWriters, "journal-writers", 8, "Goroutines writing transitions to PostgreSQL.")
	fs.DurationVar(&c.stopGrace, "stop-grace", runner.DefaultStopGrace, "How long a stopped task may ignore cancellation before it is reported Stopped anyway.")
	fs.DurationVar(&c.progressInterval, "progress-update-interval", 10*time.Second, "How often a running task's progress is copied into its status.")
	fs.Float64Var(&c.progressUpdateQPS, "progress-update-qps", 20, "Budget of progress-only status writes per second over all tasks.")
	fs.DurationVar(&c.statusCoalesceWindow, "status-coalesce-window", 100*time.Millisecond, "A fresh run's first status write waits this long, so a task that finishes sooner costs one write (0: off).")
	fs.DurationVar(&c.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a standby waits before taking over a Lease whose holder stopped renewing it (a crashed leader).")
	fs.DurationVar(&c.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew its Lease before it gives up leading.")
	fs.DurationVar(&c.retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often Lease acquisition and renewal are tried.")
	fs.DurationVar(&c.finalizerTimeout, "finalizer-timeout", time.Minute, "How long a deleted task waits for its run to stop and its record to be written.")
	fs.DurationVar(&c.startupDatabaseWaitTimeout, "startup-database-timeout", 10*time.Second, "How long start-up waits for PostgreSQL before giving up.")
	zopts := zap.Options{Development: false}
	zopts.BindFlags(fs)
	// --kubeconfig, read by ctrl.GetConfig (it is registered on flag.CommandLine only, which
	// this flag set replaces).
	crconfig.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, zopts, err
	}
	return c, zopts, nil
}

// Register adds task types to the operator's registry.
type Register func(*runner.Registry) error

// Main runs the operator with the command-line arguments args (without the program name) until
// ctx is done. register fills the task registry: runner.RegisterBuiltins for the taskpilot
// binary, the built-ins plus test types for other binaries. Errors are meant to be printed on
// one line by the caller (see OneLine).
func Main(ctx context.Context, args []string, register Register) error {
	fs := flag.NewFlagSet("taskpilot", flag.ContinueOnError)
	cfg, zopts, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("setup")

	if cfg.databaseURL == "" {
		return errors.New("no database configured: set --database-url or DATABASE_URL, for example postgres://taskpilot:secret@localhost:5432/taskpilot (make dev starts a local one)")
	}
	dbName := redactedDatabase(cfg.databaseURL)

	openCtx, cancel := context.WithTimeout(ctx, cfg.startupDatabaseWaitTimeout)
	repo, err := store.Open(openCtx, store.Config{
		URL:          cfg.databaseURL,
		MaxOpenConns: cfg.dbMaxOpenConns,
		Logger:       ctrl.Log.WithName("store"),
	})
	cancel()
	if err != nil {
		return fmt.Errorf("cannot use PostgreSQL at %s: %w (is it running, and is DATABASE_URL right?)", dbName, err)
	}
	defer func() { _ = repo.Close() }()
	log.Info("database ready, schema migrated", "database", dbName)

	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes API to talk to: %w (set --kubeconfig or KUBECONFIG, or run in a cluster)", err)
	}
	restCfg.QPS = float32(cfg.kubeAPIQPS)
	restCfg.Burst = cfg.kubeAPIBurst

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}

	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: cfg.metricsAddr},
		HealthProbeBindAddress:        cfg.probeAddr,
		PprofBindAddress:              cfg.pprofAddr,
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              "taskpilot.tasks.taskpilot.dev",
		LeaderElectionNamespace:       cfg.leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &cfg.leaseDuration,
		RenewDeadline:                 &cfg.renewDeadline,
		RetryPeriod:                   &cfg.retryPeriod,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	reg := runner.NewRegistry()
	if err := register(reg); err != nil {
		return fmt.Errorf("register task types: %w", err)
	}
	op, err := controllers.Setup(mgr, controllers.SetupOptions{
		Store:                   repo,
		Registry:                reg,
		MaxConcurrentTasks:      cfg.maxConcurrentTasks,
		StopGrace:               cfg.stopGrace,
		MaxConcurrentReconciles: cfg.maxConcurrentReconciles,
		JournalWriters:          cfg.journalWriters,
		DatabaseTimeout:         cfg.dbTimeout,
		ProgressInterval:        cfg.progressInterval,
		ProgressUpdateQPS:       float32(cfg.progressUpdateQPS),
		StatusCoalesceWindow:    cfg.statusCoalesceWindow,
		FinalizerTimeout:        cfg.finalizerTimeout,
		Metrics:                 metrics.Registry,
	})
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("database", op.DatabaseCheck(cfg.dbTimeout)); err != nil {
		return err
	}

	log.Info("starting taskpilot", "task-types", reg.Names(), "max-concurrent-tasks", cfg.maxConcurrentTasks, "leader-elect", cfg.leaderElect)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager stopped: %w", err)
	}
	return nil
}

// redactedDatabase names the database for logs and errors without its password.
func redactedDatabase(raw string) string {
	if pc, err := pgx.ParseConfig(raw); err == nil {
		return fmt.Sprintf("%s:%d/%s (user %s)", pc.Host, pc.Port, pc.Database, pc.User)
	}
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// OneLine flattens an error for a one-line message: drivers report multi-line errors (one line
// per address tried).
func OneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
