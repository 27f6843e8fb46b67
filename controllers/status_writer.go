package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/runner"
)

// statusSettle delays the status write after a spec change a little, so that it usually
// carries the transition the change causes (a pause commits within milliseconds) instead of
// costing one write for "converging" and another for the result.
const statusSettle = 50 * time.Millisecond

// passingPatience bounds how long the status waits for a step the reconciler is about to take
// (see passing) before it shows the record as it is.
const passingPatience = 2 * time.Second

// statusWriter reports: it writes each task's status from what PostgreSQL holds (the journal's
// committed view), only when it changed, and tells the story in an Event when the change is
// worth telling. It is its own controller with its own queue and workers, so status writes,
// which wait on the API server, never delay the reconciler's actions. The queue de-duplicates:
// a task whose status is behind is written once, with its latest state.
type statusWriter struct {
	client   client.Client
	journal  *journal.Journal
	runner   *engine.Runner
	member   *membership.Member
	tasks    *taskIndex
	events   events.EventRecorder
	clock    clock.PassiveClock
	progress *rate.Limiter
	// items reads the counts of a task's items that no run here reports.
	items itemCounts
	opts  Options
}

func newStatusWriter(mgr ctrl.Manager, op *Operator, tasks *taskIndex, o Options) *statusWriter {
	burst := max(1, int(o.ProgressUpdateQPS))
	return &statusWriter{
		client: mgr.GetClient(), journal: op.Journal, runner: op.Runner, member: op.Member, tasks: tasks,
		events: mgr.GetEventRecorder("taskpilot"), clock: o.Clock, opts: o, items: o.Store,
		progress: rate.NewLimiter(rate.Limit(o.ProgressUpdateQPS), burst),
	}
}

func (s *statusWriter) setupWithManager(mgr ctrl.Manager, report *kit.Wake) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("backgroundtask-status").
		Watches(&v1alpha1.BackgroundTask{}, handler.TypedFuncs[client.Object, reconcile.Request]{
			// A spec change changes Ready and observedGeneration: look shortly after it, when
			// its transition has usually been committed too. So does a new object under the
			// same name (a delete and a create seen as one update after a watch outage).
			UpdateFunc: func(_ context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				if e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() || e.ObjectOld.GetUID() != e.ObjectNew.GetUID() {
					q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.ObjectNew)}, statusSettle)
				}
			},
		}).
		WatchesRawSource(report.Source()).
		// Every replica writes the status of the tasks it owns.
		WithOptions(controller.Options{MaxConcurrentReconciles: s.opts.StatusWorkers, NeedLeaderElection: ptr.To(false),
			CacheSyncTimeout: kit.CacheSyncForever,
			// A failed write (the API server is down) is tried again within 5 s at most, not
			// after up to 1000 s: the status catches up within seconds of an outage's end.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, 5*time.Second),
		}).
		Complete(s)
}

// Reconcile implements reconcile.Reconciler.
func (s *statusWriter) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var bt v1alpha1.BackgroundTask
	if err := s.client.Get(ctx, req.NamespacedName, &bt); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	uid := string(bt.UID)
	committed, tracked := s.journal.Committed(uid)
	problem := s.tasks.problem(uid)
	switch {
	case !tracked && problem == "", tracked && !committed.Ownership.Writes():
		return ctrl.Result{}, nil // not this process's to report
	case !s.member.Valid():
		return ctrl.Result{}, nil // this process may have lost its tasks: it writes nothing
	}
	now := s.clock.Now()
	live, abandoned := "", 0
	var items *v1alpha1.ItemsStatus
	if snap, ok := s.runner.Snapshot(runner.Key(uid)); ok && tracked {
		if snap.Attempt == committed.Record.Attempt {
			live = snap.Progress
			s.journal.SetProgress(uid, live)
			if snap.Items != nil && !snap.Status.Terminal() {
				items = itemsStatus(*snap.Items)
			}
		}
		if snap.Abandoned {
			abandoned = snap.Attempt
		}
	}
	if items == nil && bt.Spec.Items != nil {
		// No run here reports them: PostgreSQL holds them (a terminal, paused or waiting task).
		var err error
		if items, err = storedItems(ctx, s.items, uid); err != nil {
			return ctrl.Result{}, err
		}
	}
	next := buildStatus(statusInput{Generation: bt.Generation, Desired: bt.Spec.State, Previous: bt.Status,
		StartAfter: timeOf(bt.Spec.StartAfter), ResumeAt: timeOf(bt.Spec.ResumeAt),
		Committed: committed, Tracked: tracked, LoadProblem: problem, LiveProgress: live, Now: now,
		StallWatched: bt.Spec.StallTimeout != nil, AbandonedAttempt: abandoned, Deferred: s.tasks.deferredWhy(uid),
		QueueWaiting: s.tasks.queueWhyOf(uid), Items: items})
	after := s.requeueAfter(committed, now)
	if tracked && passing(bt.Spec, committed.Record) && now.Sub(committed.Since) < passingPatience {
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil // its next step is on its way and wakes us
	}
	if !equality.Semantic.DeepEqual(bt.Status, next) {
		if wait := s.coalesceWait(bt.Status.Phase, next.Phase, now.Sub(committed.Since)); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		if progressOnly(bt.Status, next) && !s.progress.Allow() {
			return ctrl.Result{RequeueAfter: after}, nil // over the progress budget: a later look writes it
		}
		if err := s.write(ctx, &bt, next); err != nil {
			return ctrl.Result{}, err
		}
	}
	announce(s.events, &bt, s.journal.TakeAnnouncements(uid))
	if tracked {
		if expired, wait := ttlDue(&bt, committed, now); expired {
			return s.expire(ctx, &bt)
		} else if wait > 0 && (after == 0 || wait < after) {
			after = wait
		}
	}
	// The periodic progress refresh goes behind every change that is waiting to be reported.
	return ctrl.Result{RequeueAfter: after, Priority: ptr.To(handler.LowPriority)}, nil
}

// write replaces the whole status with a JSON patch: the task's owner is its only writer, so no
// resourceVersion precondition is needed, and a cached copy that lags our own previous write
// (common under load) does not turn into a conflict and a retry.
func (s *statusWriter) write(ctx context.Context, bt *v1alpha1.BackgroundTask, next v1alpha1.BackgroundTaskStatus) error {
	patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": next}})
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	if err := s.client.Status().Patch(ctx, bt, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// requeueAfter is when to look again without being told: a running task's progress, or a
// transition that waits so long for PostgreSQL that Recorded should say so.
func (s *statusWriter) requeueAfter(c journal.Committed, now time.Time) time.Duration {
	var after time.Duration
	if c.Record.Status == lifecycle.Running {
		after = s.opts.ProgressUpdateInterval
	}
	if c.Backlog > 0 && c.Problem.Reason == "" {
		if lag := recordLag - now.Sub(c.OldestPending); lag > 0 && (after == 0 || lag < after) {
			after = lag
		}
	}
	return after
}

// coalesceWait defers the first status write of a fresh task (phase still empty or Pending)
// while its latest change is younger than StatusCoalesceWindow: a task that finishes within the
// window gets one status write, Finished, instead of Running then Finished. API writes are the
// scarce resource (docs/benchmarks.md); later phases are written at once.
func (s *statusWriter) coalesceWait(current, next v1alpha1.Phase, age time.Duration) time.Duration {
	window := s.opts.StatusCoalesceWindow
	if window <= 0 || (current != "" && current != v1alpha1.PhasePending) ||
		(next != v1alpha1.PhasePending && next != v1alpha1.PhaseRunning) || age >= window {
		return 0
	}
	return window - age
}

// progressOnly reports whether next differs from current in the progress text and the item
// counts alone: what a running task changes all the time, written at most ProgressUpdateQPS.
func progressOnly(current, next v1alpha1.BackgroundTaskStatus) bool {
	if current.Progress == next.Progress && equality.Semantic.DeepEqual(current.Items, next.Items) {
		return false
	}
	same := next
	same.Progress, same.Items = current.Progress, current.Items
	return equality.Semantic.DeepEqual(current, same)
}
