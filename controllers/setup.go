package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/controllers/schedule"
	"github.com/taskpilot/taskpilot/controllers/sharder"
	"github.com/taskpilot/taskpilot/controllers/tasktype"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/runner"
)

// Operator is the wired operator: leadership, membership, journal, runner and the
// controllers, added to a manager that starts them on every replica (leader.go says what only
// the leader does).
type Operator struct {
	Member  *membership.Member
	Journal *journal.Journal
	Runner  *engine.Runner
	leader  *leadership
	owner   *taskOwner
	caches  interface{ WaitForCacheSync(context.Context) bool }
	opts    Options
	// privileges checks the database role for DatabaseCheck.
	privileges *privilegeCheck
}

// Elected is closed when this replica is first elected leader (at once without leader
// election).
func (op *Operator) Elected() <-chan struct{} { return op.leader.Elected() }

// Leading reports whether this replica leads now.
func (op *Operator) Leading() bool { return op.leader.Leading() }

// Setup builds the operator's components, in dependency order, and adds them to mgr.
func Setup(mgr ctrl.Manager, o Options) (*Operator, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	log := ctrl.Log.WithName("taskpilot")
	op := &Operator{opts: o}
	decide, report := kit.NewWake(), kit.NewWake()
	var lock resourcelock.Interface
	if o.LeaderElect {
		if lock, err = LeaderLock(mgr.GetConfig(), o.Namespace, o.deployment(), o.Identity, o.Incarnation, o.RenewDeadline); err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
	}
	op.leader = newLeadership(lock, LeaderElectionID(o.deployment()), o.LeaseDuration, o.RenewDeadline, o.RetryPeriod,
		log.WithName("leader"))
	if err := mgr.Add(op.leader); err != nil {
		return nil, fmt.Errorf("setup: add the leader election: %w", err)
	}

	op.Member, err = membership.New(membership.Options{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: o.Namespace, Identity: o.Identity,
		Incarnation: o.Incarnation, Deployment: o.deployment(),
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
		if err := registerRunnerMetrics(o.Metrics, func() engine.Stats { return op.Runner.Stats() }); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
		if err := o.Metrics.Register(purged); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
	}
	op.Journal, err = journal.New(journal.Options{
		Store: o.Store, Owner: op.Member.Owner, Clock: o.Clock, Log: log,
		Decide: decide.Notify, Report: report.Notify, Metrics: metrics,
		Writers: o.JournalWriters, MaxBatch: o.JournalMaxBatch, WriteTimeout: o.DatabaseTimeout, MaxBacklogBytes: o.JournalMaxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	tasks := newTaskIndex()
	if o.Metrics != nil {
		if err := registerEntryMetrics(o.Metrics, tasks.entries, func() int { return op.Journal.Tracked() },
			func() int { return op.Runner.Stats().Entries }); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
	}
	op.Runner, err = engine.New(engine.Options{
		Registry: o.Registry, Sink: op.Journal, Checkpoints: op.Journal, Lease: op.Member,
		// A run that ignored its cancellation returned: its task's next run may start, and its
		// status no longer shows it abandoned.
		Returned: func(key runner.Key) {
			if nn, ok := tasks.nameOf(string(key)); ok {
				decide.Notify(nn)
				report.Notify(nn)
			}
		},
		MaxConcurrent: o.MaxConcurrentTasks, MemoryBudget: o.MemoryBudget, StopGrace: o.StopGrace, Clock: o.Clock.Now,
		Logger: log.WithName("runner"), Tracer: o.tracer(),
	})
	if err != nil {
		return nil, fmt.Errorf("setup: runner: %w", err)
	}

	privileges := newPrivilegeCheck(o.Store)
	if o.Metrics != nil {
		if err := o.Metrics.Register(privileges.missing); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
	}
	op.privileges = privileges
	eng := &taskOwner{prepare: o.Prepare, privileges: privileges, member: op.Member, journal: op.Journal, runner: op.Runner, sweep: &sweeper{
		client: mgr.GetClient(), apiReader: mgr.GetAPIReader(), store: o.Store, journal: op.Journal, member: op.Member,
		decide: decide.Notify, timeout: o.DatabaseTimeout, retention: o.HistoryRetention, purged: purged, sharding: o.Sharding,
		leading: op.leader.Leading, log: log.WithName("sweep"),
	}, sweepInterval: o.SweepInterval, ready: make(chan struct{}), log: log}
	if err := mgr.Add(eng); err != nil {
		return nil, fmt.Errorf("setup: add the task owner: %w", err)
	}
	op.owner, op.caches = eng, mgr.GetCache()
	if o.Metrics != nil {
		if err := registerBackendMetrics(o.Metrics, op.Member); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
	}
	rec := &reconciler{
		client: mgr.GetClient(), apiReader: mgr.GetAPIReader(), store: o.Store, journal: op.Journal,
		runner: op.Runner, member: op.Member, ready: eng.ready, events: mgr.GetEventRecorder("taskpilot"),
		clock: o.Clock, tasks: tasks, report: report.Notify, leading: op.leader.Leading, opts: o,
	}
	rec.admitter = newAdmitter(o.Store, op.Member.Owner, eng.ready, o.Clock, o.QueueInterval, o.DatabaseTimeout, decide,
		tasks.admitPlace, func(uid string, nn types.NamespacedName, why string) {
			if tasks.setQueueWhy(uid, why) {
				report.Notify(nn)
			}
		}, log.WithName("queue"))
	if err := mgr.Add(rec.admitter); err != nil {
		return nil, fmt.Errorf("setup: add the queue admitter: %w", err)
	}
	qm, err := newQueueMetrics(o.Metrics)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	qc := &queueController{client: mgr.GetClient(), store: o.Store, clock: o.Clock, leading: op.leader.Leading,
		timeout: o.DatabaseTimeout, metrics: qm}
	lookQueues := kit.NewWake()
	if err := qc.setupWithManager(mgr, lookQueues); err != nil {
		return nil, fmt.Errorf("setup: queue controller: %w", err)
	}
	op.leader.OnGain(func() { qc.lookAtEveryQueue(context.Background(), lookQueues) })
	if err := rec.setupWithManager(mgr, decide); err != nil {
		return nil, fmt.Errorf("setup: controller: %w", err)
	}
	if err := addLeaseWatch(mgr, &leaseWatch{r: rec, clock: o.Clock, interval: o.RetryPeriod / 4,
		log: log.WithName("takeover")}); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	sw := newStatusWriter(mgr, op, tasks, o)
	if err := sw.setupWithManager(mgr, report); err != nil {
		return nil, fmt.Errorf("setup: status controller: %w", err)
	}
	pub := tasktype.New(tasktype.Options{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Registry: o.Registry,
		Namespace: o.Namespace, Deployment: o.deployment(), Clock: o.Clock, Leading: op.leader.Leading,
		Log: log.WithName("publisher")})
	if err := mgr.Add(pub); err != nil {
		return nil, fmt.Errorf("setup: add the task-type publisher: %w", err)
	}
	// A new leader looks at every task (without sharding it adopts those nobody runs) and
	// publishes the task types at once.
	op.leader.OnGain(func() { rec.lookAtEveryTask(decide) })
	op.leader.OnGain(pub.Kick)
	look := kit.NewWake()
	children := client.Reader(mgr.GetClient())
	if o.Sharding {
		children = mgr.GetAPIReader() // this replica's cache holds its own share of the tasks only
	}
	sch, err := schedule.New(schedule.Options{Client: mgr.GetClient(), Children: children, API: mgr.GetAPIReader(),
		Store: o.Store, Clock: o.Clock, Events: mgr.GetEventRecorder("taskpilot"), Leading: op.leader.Leading,
		Identity: o.Identity, Workers: o.MaxConcurrentReconciles, Metrics: o.Metrics, Tracer: o.tracer(), Log: log.WithName("schedule")})
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	if err := sch.SetupWithManager(mgr, look); err != nil {
		return nil, fmt.Errorf("setup: schedule controller: %w", err)
	}
	op.leader.OnGain(func() { sch.LookAtEverySchedule(look) })
	if o.Sharding {
		sh, err := sharder.New(mgr, sharder.Options{Namespace: o.Namespace, Namespaces: o.Namespaces,
			Deployment: o.deployment(), Serves: o.Registry.Has, LiveRows: o.Store.LiveMembers,
			Observer: op.Member.Observer(), Leading: op.leader.Leading, Workers: o.MaxConcurrentReconciles,
			Metrics: o.Metrics, Log: log.WithName("sharder")})
		if err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
		if err := sh.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setup: sharder: %w", err)
		}
	}
	return op, nil
}

// StartupCheck is a readyz check: not ready until this process owns tasks (the database
// prepared, the membership joined, the runner started), saying which step it waits for.
func (op *Operator) StartupCheck() healthz.Checker {
	return func(*http.Request) error {
		if why := op.owner.notReady(); why != "" {
			return errors.New(why)
		}
		return nil
	}
}

// KubernetesCheck is a readyz check: not ready until the caches filled from the API server, nor
// while the membership Lease is not renewed (the API server does not answer, or too late). The
// tasks keep running while the PostgreSQL row keeps the membership.
func (op *Operator) KubernetesCheck() healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		defer cancel()
		if !op.caches.WaitForCacheSync(ctx) {
			return errors.New("waiting for the API server: the caches have not filled from it yet")
		}
		if op.owner.notReady() != "" {
			return nil // not a member yet: StartupCheck says why
		}
		api, db := op.Member.Backends()
		if !api.Renewed {
			return fmt.Errorf("the membership Lease was last renewed %s ago (the API server does not answer in time); "+
				"the PostgreSQL row keeps the membership: %t", api.Since.Round(time.Second), db.Renewed)
		}
		return nil
	}
}

// DatabaseCheck is a readyz check: not ready while PostgreSQL does not answer, nor while the
// operator's role lacks privileges it needs (saying which).
func (op *Operator) DatabaseCheck() healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), op.opts.DatabaseTimeout)
		defer cancel()
		if err := op.opts.Store.Ping(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		why, err := op.privileges.check(ctx)
		if err != nil {
			return fmt.Errorf("database: cannot check the role's privileges: %w", err)
		}
		if why != "" {
			return errors.New(why)
		}
		return nil
	}
}
