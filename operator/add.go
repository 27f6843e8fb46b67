package operator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// Operator is a taskpilot operator added to a manager.
type Operator struct {
	core     *controllers.Operator
	repo     *store.Repository
	registry *runner.Registry
}

// AddToScheme registers taskpilot's API (BackgroundTask, TaskType) with s: the scheme of a
// manager that Add is given must know it.
func AddToScheme(s *runtime.Scheme) error { return v1alpha1.AddToScheme(s) }

// CacheByObject is what the manager should cache beyond its defaults (set it as
// cache.Options.ByObject, merged with the host program's own): the operator deployment's
// membership Leases only, and with Sharding only the BackgroundTasks assigned to this replica.
// Without it the operator works, with a cluster-wide Lease informer and, when sharded, every
// task in each replica's memory.
func CacheByObject(o Options) map[client.Object]cache.ByObject {
	return controllers.CacheByObject(controllers.Options{Namespace: o.Namespace, Deployment: o.Deployment,
		Identity: o.Identity, Sharding: o.Sharding})
}

// Add adds a taskpilot operator with o's settings and register's task types to mgr, for a
// program that already runs a controller-runtime manager (Main does the same for a binary of
// its own). It needs neither PostgreSQL nor the API server to answer: once the manager runs,
// the operator migrates the schema (retrying, each attempt up to o.StartupDatabaseTimeout) and
// joins before it owns tasks, not ready meanwhile; call Close once the manager stopped. mgr must know taskpilot's API
// (AddToScheme) and should cache as CacheByObject says. taskpilot elects its own leader
// (o.LeaderElect, a Lease of its own) and runs on every replica whatever mgr's leader election
// decides for the host program's controllers. Its metrics go to controller-runtime's registry;
// add ReadyCheck to the manager's readiness checks.
func Add(ctx context.Context, mgr manager.Manager, o Options, register Register) (*Operator, error) {
	if err := o.Complete(); err != nil {
		return nil, err
	}
	reg := runner.NewRegistry()
	if err := register(reg); err != nil {
		return nil, fmt.Errorf("register task types: %w", err)
	}
	if len(reg.Names()) == 0 {
		return nil, errors.New("register task types: none registered (builtin.Register adds taskpilot's own)")
	}
	budget, err := memoryBudget(o.MemoryBudget)
	if err != nil {
		return nil, err
	}
	journalMax, err := resource.ParseQuantity(o.JournalMaxBytes)
	if err != nil || journalMax.Sign() <= 0 {
		return nil, fmt.Errorf("--journal-max-bytes %q: want a quantity such as 64Mi", o.JournalMaxBytes)
	}
	// Nothing here needs PostgreSQL to answer: the operator starts, not ready, and migrates
	// the schema (retrying) before it owns tasks; a database that is away never ends it.
	repo, err := store.OpenLazy(store.Config{URL: o.DatabaseURL, MigrateURL: o.MigrateDatabaseURL,
		MaxOpenConns: o.DBMaxOpenConns, Logger: ctrl.Log.WithName("store")})
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s: %w", redactedDatabase(o.DatabaseURL), err)
	}
	setupLog := ctrl.Log.WithName("setup")
	prepare := func(ctx context.Context) error {
		// One attempt may wait this long, the migration lock of another replica included.
		ctx, cancel := context.WithTimeout(ctx, o.StartupDatabaseTimeout)
		defer cancel()
		if err := repo.Migrate(ctx); err != nil {
			return fmt.Errorf("PostgreSQL at %s: %w (is it running, and is DATABASE_URL right?)", redactedDatabase(o.DatabaseURL), err)
		}
		setupLog.Info("database ready, schema migrated", "database", redactedDatabase(o.DatabaseURL))
		return nil
	}
	core, err := controllers.Setup(mgr, controllers.Options{
		Prepare:                 prepare,
		Store:                   repo,
		Registry:                reg,
		Identity:                o.Identity,
		Incarnation:             o.Incarnation,
		Namespace:               o.Namespace,
		Deployment:              o.Deployment,
		LeaseDuration:           o.LeaseDuration,
		RenewDeadline:           o.RenewDeadline,
		RetryPeriod:             o.RetryPeriod,
		MaxConcurrentTasks:      o.MaxConcurrentTasks,
		StopGrace:               o.StopGrace,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		StatusWorkers:           o.StatusWorkers,
		JournalWriters:          o.JournalWriters,
		JournalMaxBytes:         journalMax.Value(),
		DatabaseTimeout:         o.DBTimeout,
		ProgressInterval:        o.ProgressUpdateInterval,
		ProgressUpdateQPS:       o.ProgressUpdateQPS,
		StatusCoalesceWindow:    o.StatusCoalesceWindow,
		SweepInterval:           o.SweepInterval,
		HistoryRetention:        o.HistoryRetention,
		MemoryBudget:            budget,
		LeaderElection:          o.LeaderElect,
		Sharding:                o.Sharding,
		Metrics:                 cmp.Or[prometheus.Registerer](o.Metrics, metrics.Registry),
	})
	if err != nil {
		_ = repo.Close()
		return nil, err
	}
	return &Operator{core: core, repo: repo, registry: reg}, nil
}

// ReadyCheck is a readiness check: not ready until the operator owns tasks (database
// prepared, membership joined), nor while PostgreSQL or the API server does not answer, each
// with its reason. Main adds the three parts as separate checks (ReadyChecks).
func (op *Operator) ReadyCheck() healthz.Checker {
	checks := op.ReadyChecks()
	return func(req *http.Request) error {
		var errs []error
		for _, name := range slices.Sorted(maps.Keys(checks)) {
			if err := checks[name](req); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		return errors.Join(errs...)
	}
}

// ReadyChecks are the readiness checks by name: "startup" (what the operator waits for before
// it owns tasks), "database" (PostgreSQL answers) and "kubernetes" (the membership Lease is
// renewed in time).
func (op *Operator) ReadyChecks() map[string]healthz.Checker {
	return map[string]healthz.Checker{
		"startup":    op.core.StartupCheck(),
		"database":   op.core.DatabaseCheck(),
		"kubernetes": op.core.KubernetesCheck(),
	}
}

// TaskTypes lists the task types this operator runs.
func (op *Operator) TaskTypes() []runner.TypeInfo { return op.registry.Types() }

// Close releases the database connections; call it after the manager stopped.
func (op *Operator) Close() error { return op.repo.Close() }
