package operator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"

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
// its own). It opens PostgreSQL and migrates the schema before it returns (waiting up to
// o.StartupDatabaseTimeout); call Close once the manager stopped. mgr must know taskpilot's API
// (AddToScheme), should cache as CacheByObject says, and decides leadership: with leader
// election on, only the leader runs tasks (with o.Sharding, every replica does and the leader
// assigns them). Its metrics go to controller-runtime's registry; add ReadyCheck to the
// manager's readiness checks.
func Add(ctx context.Context, mgr manager.Manager, o Options, register Register) (*Operator, error) {
	if err := o.Complete(); err != nil {
		return nil, err
	}
	reg := runner.NewRegistry()
	if err := register(reg); err != nil {
		return nil, fmt.Errorf("register task types: %w", err)
	}
	if len(reg.Names()) == 0 {
		return nil, errors.New("register task types: none registered (runner.RegisterBuiltins adds taskpilot's own)")
	}
	budget, err := memoryBudget(o.MemoryBudget)
	if err != nil {
		return nil, err
	}
	journalMax, err := resource.ParseQuantity(o.JournalMaxBytes)
	if err != nil || journalMax.Sign() <= 0 {
		return nil, fmt.Errorf("--journal-max-bytes %q: want a quantity such as 64Mi", o.JournalMaxBytes)
	}
	openCtx, cancel := context.WithTimeout(ctx, o.StartupDatabaseTimeout)
	repo, err := store.Open(openCtx, store.Config{URL: o.DatabaseURL, MigrateURL: o.MigrateDatabaseURL,
		MaxOpenConns: o.DBMaxOpenConns, Logger: ctrl.Log.WithName("store")})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cannot use PostgreSQL at %s: %w (is it running, and is DATABASE_URL right?)", redactedDatabase(o.DatabaseURL), err)
	}
	ctrl.Log.WithName("setup").Info("database ready, schema migrated", "database", redactedDatabase(o.DatabaseURL))
	core, err := controllers.Setup(mgr, controllers.Options{
		Store:                   repo,
		Registry:                reg,
		Identity:                o.Identity,
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
		Sharding:                o.Sharding,
		Metrics:                 cmp.Or[prometheus.Registerer](o.Metrics, metrics.Registry),
	})
	if err != nil {
		_ = repo.Close()
		return nil, err
	}
	return &Operator{core: core, repo: repo, registry: reg}, nil
}

// ReadyCheck is a readiness check: not ready while PostgreSQL does not answer.
func (op *Operator) ReadyCheck() healthz.Checker {
	check := op.core.DatabaseCheck()
	return func(req *http.Request) error { return check(req) }
}

// TaskTypes lists the task types this operator runs.
func (op *Operator) TaskTypes() []runner.TypeInfo { return op.registry.Types() }

// Close releases the database connections; call it after the manager stopped.
func (op *Operator) Close() error { return op.repo.Close() }
