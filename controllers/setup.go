package controllers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/runner"
)

// Operator is the wired operator: membership, journal, runner and the two controllers, added
// to a manager that starts them (on the elected leader only, when leader election is on).
type Operator struct {
	Member  *membership.Member
	Journal *journal.Journal
	Runner  *runner.Runner
	opts    Options
}

// Setup builds the operator's components, in dependency order, and adds them to mgr.
func Setup(mgr ctrl.Manager, o Options) (*Operator, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	log := ctrl.Log.WithName("taskpilot")
	op := &Operator{opts: o}
	decide, report := newWake(), newWake()

	op.Member, err = membership.New(membership.Options{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: o.Namespace, Identity: o.Identity, Deployment: o.deployment(),
		LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
		Roll: o.Store, Clock: o.Clock, Log: log.WithName("membership"),
	})
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	// The metrics read the journal and the runner built below: the closures see them once set.
	var metrics *journal.Metrics
	purged := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "taskpilot_history_purged_tasks_total",
		Help: "Soft-deleted tasks purged with their history after --history-retention.",
	})
	if o.Metrics != nil {
		if metrics, err = journal.NewMetrics(o.Metrics, func() int { return op.Journal.Backlog() },
			func() int64 { return op.Journal.BacklogBytes() }); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
		if err := registerRunnerMetrics(o.Metrics, func() runner.Stats { return op.Runner.Stats() }); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
		if err := o.Metrics.Register(purged); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
	}
	op.Journal, err = journal.New(journal.Options{
		Store: o.Store, Owner: op.Member.Owner, Clock: o.Clock, Log: log,
		Decide: decide.notify, Report: report.notify, Metrics: metrics,
		Writers: o.JournalWriters, WriteTimeout: o.DatabaseTimeout, MaxBacklogBytes: o.JournalMaxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	tasks := newTaskIndex()
	op.Runner, err = runner.New(runner.Options{
		Registry: o.Registry, Sink: op.Journal, Checkpoints: op.Journal, Lease: op.Member,
		// A run that ignored its cancellation returned: its task's next run may start, and its
		// status no longer shows it abandoned.
		Returned: func(key runner.Key) {
			if nn, ok := tasks.nameOf(string(key)); ok {
				decide.notify(nn)
				report.notify(nn)
			}
		},
		MaxConcurrent: o.MaxConcurrentTasks, MemoryBudget: o.MemoryBudget, StopGrace: o.StopGrace, Clock: o.Clock.Now,
		Logger: log.WithName("runner"),
	})
	if err != nil {
		return nil, fmt.Errorf("setup: runner: %w", err)
	}

	eng := &engine{member: op.Member, journal: op.Journal, runner: op.Runner, sweep: &sweeper{
		client: mgr.GetClient(), apiReader: mgr.GetAPIReader(), store: o.Store, journal: op.Journal, member: op.Member,
		decide: decide.notify, timeout: o.DatabaseTimeout, retention: o.HistoryRetention, purged: purged, sharding: o.Sharding,
		log: log.WithName("sweep"),
	}, sweepInterval: o.SweepInterval, ready: make(chan struct{}), sharding: o.Sharding, log: log}
	if err := mgr.Add(eng); err != nil {
		return nil, fmt.Errorf("setup: add engine: %w", err)
	}
	rec := &reconciler{
		client: mgr.GetClient(), apiReader: mgr.GetAPIReader(), store: o.Store, journal: op.Journal,
		runner: op.Runner, member: op.Member, ready: eng.ready, events: mgr.GetEventRecorder("taskpilot"),
		clock: o.Clock, tasks: tasks, report: report.notify, opts: o,
	}
	if err := rec.setupWithManager(mgr, decide); err != nil {
		return nil, fmt.Errorf("setup: controller: %w", err)
	}
	sw := newStatusWriter(mgr, op, tasks, o)
	if err := sw.setupWithManager(mgr, report); err != nil {
		return nil, fmt.Errorf("setup: status controller: %w", err)
	}
	pub := &publisher{client: mgr.GetClient(), reader: mgr.GetAPIReader(), registry: o.Registry, namespace: o.Namespace,
		deployment: o.deployment(), clock: o.Clock, log: log.WithName("publisher")}
	if err := mgr.Add(pub); err != nil {
		return nil, fmt.Errorf("setup: add the task-type publisher: %w", err)
	}
	if o.Sharding {
		sh, err := newSharder(mgr, o, log)
		if err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
		if err := sh.setupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setup: sharder: %w", err)
		}
	}
	return op, nil
}

// DatabaseCheck is a readyz check: not ready while PostgreSQL does not answer.
func (op *Operator) DatabaseCheck() healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), op.opts.DatabaseTimeout)
		defer cancel()
		if err := op.opts.Store.Ping(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		return nil
	}
}

// settleDelay is how long to wait for a change that is on its way (a run stopping).
const settleDelay = 200 * time.Millisecond
