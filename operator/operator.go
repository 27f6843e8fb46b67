package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

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

	if cfg.sharding && !cfg.leaderElect {
		return errors.New("--sharding needs --leader-elect: the elected leader assigns the tasks to the replicas")
	}
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

	restCfg, err := restConfig(cfg.kubeconfig)
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

	var lock resourcelock.Interface
	if cfg.leaderElect {
		if lock, err = leaderLock(restCfg, cfg); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: cfg.metricsAddr},
		HealthProbeBindAddress:  cfg.probeAddr,
		PprofBindAddress:        cfg.pprofAddr,
		LeaderElection:          cfg.leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: cfg.leaderElectionNamespace,
		// Held under --identity, so a restarted replica leads again at once (leaderlock.go).
		LeaderElectionResourceLockInterface: lock,
		// Leases are watched in the operator's namespace only, and only the membership ones:
		// a cluster-wide Lease informer would follow every node's heartbeat.
		// With sharding, a replica caches only the BackgroundTasks assigned to it.
		// Nothing reads managedFields: the cache keeps objects without them (about a third of a
		// small BackgroundTask's bytes), which is memory per task.
		Cache:                         cache.Options{ByObject: cacheByObject(cfg), DefaultTransform: cache.TransformStripManagedFields()},
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &cfg.leaseDuration,
		RenewDeadline:                 &cfg.renewDeadline,
		RetryPeriod:                   &cfg.retryPeriod,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	budget, err := memoryBudget(cfg.memoryBudget)
	if err != nil {
		return err
	}
	reg := runner.NewRegistry()
	if err := register(reg); err != nil {
		return fmt.Errorf("register task types: %w", err)
	}
	op, err := controllers.Setup(mgr, controllers.Options{
		Store:                   repo,
		Registry:                reg,
		Identity:                cfg.identity,
		Namespace:               cfg.leaderElectionNamespace,
		LeaseDuration:           cfg.leaseDuration,
		RenewDeadline:           cfg.renewDeadline,
		RetryPeriod:             cfg.retryPeriod,
		MaxConcurrentTasks:      cfg.maxConcurrentTasks,
		StopGrace:               cfg.stopGrace,
		MaxConcurrentReconciles: cfg.maxConcurrentReconciles,
		StatusWorkers:           cfg.statusWorkers,
		JournalWriters:          cfg.journalWriters,
		DatabaseTimeout:         cfg.dbTimeout,
		ProgressInterval:        cfg.progressInterval,
		ProgressUpdateQPS:       cfg.progressUpdateQPS,
		StatusCoalesceWindow:    cfg.statusCoalesceWindow,
		SweepInterval:           cfg.sweepInterval,
		HistoryRetention:        cfg.historyRetention,
		MemoryBudget:            budget,
		Sharding:                cfg.sharding,
		Metrics:                 metrics.Registry,
	})
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("database", op.DatabaseCheck()); err != nil {
		return err
	}

	log.Info("starting taskpilot", "identity", cfg.identity, "task-types", reg.Names(),
		"max-concurrent-tasks", cfg.maxConcurrentTasks, "leader-elect", cfg.leaderElect, "sharding", cfg.sharding)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager stopped: %w", err)
	}
	return nil
}

// cacheByObject is what the manager caches beyond the defaults: the membership Leases only and,
// with sharding, only the BackgroundTasks assigned to this replica.
func cacheByObject(cfg config) map[client.Object]cache.ByObject {
	by := controllers.LeaseCache(cfg.leaderElectionNamespace)
	if cfg.sharding {
		maps.Copy(by, controllers.TaskCache(cfg.identity))
	}
	return by
}

// restConfig loads the API server's address and credentials from kubeconfig, or as kubectl
// does when it is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
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
