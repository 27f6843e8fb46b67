package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// SetupOptions configure Setup.
type SetupOptions struct {
	Store                   store.Repository
	Registry                *runner.Registry
	MaxConcurrentTasks      int
	StopGrace               time.Duration
	MaxConcurrentReconciles int
	JournalWriters          int
	DatabaseTimeout         time.Duration
	ProgressInterval        time.Duration
	ProgressUpdateQPS       float32
	StatusCoalesceWindow    time.Duration
	FinalizerTimeout        time.Duration
	// Metrics registers taskpilot's metrics (controller-runtime's metrics.Registry in main; a
	// fresh prometheus.NewRegistry() in tests, where several managers share a process).
	Metrics prometheus.Registerer
	Clock   clock.PassiveClock
}

// Operator is the wired operator: runner, journal, notifier and reconciler, all added to a
// manager and started by it (only on the elected leader).
type Operator struct {
	Runner     *runner.Runner
	Journal    *Journal
	Reconciler *BackgroundTaskReconciler
	store      store.Repository
}

// Setup builds the operator's components and adds them to mgr.
func Setup(mgr ctrl.Manager, o SetupOptions) (*Operator, error) {
	if o.Store == nil || o.Registry == nil {
		return nil, errors.New("setup: Store and Registry are required")
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	log := ctrl.Log.WithName("taskpilot")
	notifier := NewNotifier()
	recorder := mgr.GetEventRecorder("taskpilot")

	op := &Operator{store: o.Store}
	var err error
	op.Journal = NewJournal(JournalOptions{
		Store:        o.Store,
		Clock:        o.Clock,
		Logger:       log,
		Notify:       notifier.Notify,
		Writers:      o.JournalWriters,
		WriteTimeout: o.DatabaseTimeout,
	})
	op.Runner, err = runner.New(runner.Options{
		Registry:      o.Registry,
		Sink:          op.Journal,
		Checkpoints:   op.Journal,
		MaxConcurrent: o.MaxConcurrentTasks,
		StopGrace:     o.StopGrace,
		Clock:         o.Clock.Now,
		Logger:        log.WithName("runner"),
	})
	if err != nil {
		return nil, fmt.Errorf("setup: runner: %w", err)
	}
	if o.Metrics != nil {
		m, err := NewMetrics(o.Metrics, func() *Journal { return op.Journal }, op.Runner.Stats)
		if err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
		op.Journal.opts.Metrics = m
	}
	op.Reconciler = NewBackgroundTaskReconciler(ReconcilerOptions{
		Client:                  mgr.GetClient(),
		Store:                   o.Store,
		Runner:                  op.Runner,
		RunnerStarted:           op.Runner.Started(),
		Journal:                 op.Journal,
		Notifier:                notifier,
		Events:                  recorder,
		Clock:                   o.Clock,
		ProgressInterval:        o.ProgressInterval,
		ProgressUpdateQPS:       o.ProgressUpdateQPS,
		StatusCoalesceWindow:    o.StatusCoalesceWindow,
		FinalizerTimeout:        o.FinalizerTimeout,
		DatabaseTimeout:         o.DatabaseTimeout,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
	})
	loader := &startupLoader{client: mgr.GetClient(), store: o.Store, notify: notifier.Notify, timeout: o.DatabaseTimeout}
	for _, r := range []manager.Runnable{op.Runner, op.Journal, notifier, loader} {
		if err := mgr.Add(r); err != nil {
			return nil, fmt.Errorf("setup: add runnable: %w", err)
		}
	}
	if err := op.Reconciler.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setup: controller: %w", err)
	}
	return op, nil
}

// DatabaseCheck is a readyz check: not ready while PostgreSQL does not answer.
func (op *Operator) DatabaseCheck(timeout time.Duration) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), timeout)
		defer cancel()
		if err := op.store.Ping(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		return nil
	}
}

// startupLoader is the counterpart of the seed's "TaskManager loads RUNNING/PAUSED tasks on
// startup": once this replica leads, it reads every active row and asks the reconciler to
// adopt it (resume from its checkpoint, re-queue, or keep paused). Rows whose BackgroundTask is
// gone (deleted while no operator ran) are marked deleted, keeping their history.
type startupLoader struct {
	client  client.Client
	store   store.Repository
	notify  func(types.NamespacedName)
	timeout time.Duration
}

// Start implements manager.Runnable; it retries until the database answers.
func (l *startupLoader) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("startup-loader")
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		n, err := l.load(ctx)
		if err == nil {
			log.Info("loaded active tasks from PostgreSQL", "tasks", n)
			return nil
		}
		log.Info("cannot load active tasks yet; retrying", "error", err.Error(), "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

func (l *startupLoader) load(ctx context.Context) (int, error) {
	dbctx, cancel := context.WithTimeout(ctx, 6*l.timeout)
	rows, err := l.store.ListActive(dbctx)
	cancel()
	if err != nil {
		return 0, err
	}
	for _, row := range rows {
		nn := types.NamespacedName{Namespace: row.Namespace, Name: row.Name}
		var bt v1alpha1.BackgroundTask
		err := l.client.Get(ctx, nn, &bt)
		switch {
		case err == nil && string(bt.UID) == row.UID:
			l.notify(nn)
		case err == nil || apierrors.IsNotFound(err):
			dbctx, cancel := context.WithTimeout(ctx, l.timeout)
			err = l.store.MarkDeleted(dbctx, row.UID)
			cancel()
			if err != nil {
				return 0, fmt.Errorf("mark orphaned row %s deleted: %w", row.UID, err)
			}
		default:
			return 0, fmt.Errorf("get %s: %w", nn, err)
		}
	}
	return len(rows), nil
}
