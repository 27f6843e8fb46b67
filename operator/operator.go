package operator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

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
	"github.com/taskpilot/taskpilot/internal/version"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// Operator is a taskpilot operator for a controller-runtime manager: New builds it from its
// options (completed and checked) and task types, SetupWithManager adds it to a manager built
// with its CacheByObject. Main does all of it for a binary of its own.
type Operator struct {
	opts     Options
	registry *runner.Registry
	repo     *store.Repository
	core     *controllers.Operator
	byObject map[client.Object]cache.ByObject
}

// AddToScheme registers taskpilot's API (BackgroundTask, TaskType, TaskSchedule) with s: the
// scheme of the manager the operator is added to must know it.
func AddToScheme(s *runtime.Scheme) error { return v1alpha1.AddToScheme(s) }

// New completes o from the environment (Options.Complete), checks it, and registers the task
// types register adds. It needs neither PostgreSQL nor the API server: once the manager runs,
// the operator migrates the schema (retrying, each attempt up to o.StartupDatabaseTimeout) and
// joins before it owns tasks, not ready meanwhile.
func New(o Options, register Register) (*Operator, error) {
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
	byObject, err := controllers.CacheByObject(o.Settings)
	if err != nil {
		return nil, err
	}
	return &Operator{opts: o, registry: reg, byObject: byObject}, nil
}

// CacheByObject is what the manager should cache beyond its defaults (set it as
// cache.Options.ByObject, merged with the host program's own): the deployment's membership
// Leases only, the BackgroundTasks without large params and, with Sharding, only those
// assigned to this replica. Without it the operator works, with a cluster-wide Lease informer
// and, when sharded, every task in each replica's memory.
func (op *Operator) CacheByObject() map[client.Object]cache.ByObject {
	return maps.Clone(op.byObject) // the caller may merge its own into it
}

// SetupWithManager adds the operator to mgr. mgr must know taskpilot's API (AddToScheme) and
// should cache as CacheByObject says. taskpilot elects its own leader (LeaderElect, a Lease of
// its own) and runs on every replica, whatever mgr's leader election decides for the host
// program's controllers. Add ReadyChecks to the manager's readiness checks, and call Close once
// the manager stopped.
func (op *Operator) SetupWithManager(mgr manager.Manager) error {
	if op.core != nil {
		return errors.New("operator: already set up with a manager")
	}
	o := op.opts
	// Nothing here needs PostgreSQL to answer: the operator starts, not ready, and migrates
	// the schema (retrying) before it owns tasks; a database that is away never ends it.
	repo, err := store.OpenLazy(store.Config{URL: o.DatabaseURL, MigrateURL: o.MigrateDatabaseURL,
		MaxOpenConns: o.DatabaseMaxOpenConns, Logger: ctrl.Log.WithName("store")})
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w", redactedDatabase(o.DatabaseURL), err)
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
	reg := cmp.Or[prometheus.Registerer](o.Metrics, metrics.Registry)
	if err := reg.Register(buildInfo(version.Get())); err != nil {
		_ = repo.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	core, err := controllers.Setup(mgr, controllers.Options{Settings: o.Settings, Prepare: prepare, Store: repo,
		Registry: op.registry, Metrics: reg, TracerProvider: op.opts.TracerProvider})
	if err != nil {
		_ = repo.Close()
		return err
	}
	op.repo, op.core = repo, core
	return nil
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
func (op *Operator) Close() error {
	if op.repo == nil {
		return nil
	}
	return op.repo.Close()
}
