package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// reconciler acts: it moves each BackgroundTask toward its spec by driving the runner and
// recording the transitions it decides, and it never writes to the API server on that path
// (the status writer reports, separately), so a spec change reaches the runner without
// waiting behind anyone's API writes. Gather (the object, the journal's projected record, the
// runner), decide (pure, decide.go), act (act.go).
type reconciler struct {
	client    client.Client
	apiReader client.Reader
	store     *store.Repository
	journal   *journal.Journal
	runner    *engine.Runner
	member    *membership.Member
	ready     <-chan struct{}
	events    events.EventRecorder
	clock     clock.PassiveClock
	tasks     *taskIndex
	report    func(types.NamespacedName)
	leading   func() bool
	opts      Options
	// decideWake queues a task for a reconcile; takeovers serialises takeOver.
	decideWake *kit.Wake
	takeovers  sync.Mutex
	// admitter runs the admission rounds of the queues this replica's tasks wait in.
	admitter *admitter
}

// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=backgroundtasks,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=backgroundtasks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=tasktypes,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=tasktypes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

func (r *reconciler) setupWithManager(mgr ctrl.Manager, decide *kit.Wake) error {
	r.decideWake = decide
	// Spec changes; with sharding also the assignment labels (a drain request).
	changes := taskChanges()
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.BackgroundTask{}, indexQueue, func(o client.Object) []string {
		if q := o.(*v1alpha1.BackgroundTask).Spec.Queue; q != "" {
			return []string{q}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index tasks by queue: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.BackgroundTask{}, builder.WithPredicates(changes)).
		// A queue's spec change (paused, drained, deleted) concerns every task that names it.
		Watches(&v1alpha1.TaskQueue{}, handler.EnqueueRequestsFromMapFunc(r.tasksOfQueue),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(decide.Source()).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.opts.MaxConcurrentReconciles,
			// Every replica reconciles the tasks it owns; adopting the others is the leader's
			// (mayAdopt).
			NeedLeaderElection: ptr.To(false),
			CacheSyncTimeout:   kit.CacheSyncForever,
			// A failed reconcile (the database is down when a task is first seen) backs off to
			// 30s at most, not 1000s, so tasks start soon after an outage ends.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, 30*time.Second),
		}).
		Named("backgroundtask").
		Complete(r)
}

// indexQueue indexes the cached BackgroundTasks by spec.queue.
const indexQueue = "spec.queue"

// tasksOfQueue lists the tasks (of this replica's cache) that name a queue.
func (r *reconciler) tasksOfQueue(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.BackgroundTaskList
	if err := r.client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexQueue: o.GetName()},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
	}
	return out
}

// taskChanges passes the changes of a BackgroundTask the reconciler acts on: its spec, its
// assignment labels (sharding: a drain request), and a new object under the same name (after a
// watch outage the informer relists by name, so a delete and a create arrive as one update of
// equal generation, which the generation predicate alone would drop).
func taskChanges() predicate.Predicate {
	return predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, assignmentChanged(), uidChanged())
}

// uidChanged passes an update whose object is another object than before (same name).
func uidChanged() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc:  func(e event.UpdateEvent) bool { return e.ObjectOld.GetUID() != e.ObjectNew.GetUID() },
	}
}

// durationOf reads an optional duration (0 when unset).
func durationOf(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}

// timeOf reads an optional time (zero when unset).
func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// Reconcile implements reconcile.Reconciler.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	select {
	case <-r.ready:
	default: // this process is not a task owner yet (joining, or waiting for leadership)
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil
	}
	nn := req.NamespacedName
	var bt v1alpha1.BackgroundTask
	if err := r.client.Get(ctx, nn, &bt); err != nil {
		if apierrors.IsNotFound(err) {
			uid := r.tasks.knownUIDOf(nn)
			if moved, err := r.movedAway(ctx, nn, uid); err != nil || moved {
				if err != nil {
					return ctrl.Result{}, err
				}
				return r.handOver(ctx, nn, uid, nil)
			}
			res, _, err := r.gone(ctx, nn, uid)
			return res, err
		}
		return ctrl.Result{}, fmt.Errorf("get %s: %w", nn, err)
	}
	uid := string(bt.UID)
	if r.tasks.handingOver(uid) {
		return r.handOver(ctx, nn, uid, &bt) // a hand-over that started completes first
	}
	if old := r.tasks.knownUIDOf(nn); old != "" && old != uid {
		// The name belongs to a new object now: the old task is gone.
		if res, done, err := r.gone(ctx, nn, old); !done || err != nil {
			return res, err
		}
	}
	if r.opts.Sharding && !r.assignedHere(&bt) {
		return r.handOver(ctx, nn, uid, &bt)
	}
	if !bt.DeletionTimestamp.IsZero() {
		res, _, err := r.gone(ctx, nn, uid)
		return res, err
	}
	if !r.opts.Registry.Has(bt.Spec.TaskName) {
		elsewhere, err := r.servedElsewhere(ctx, bt.Spec.TaskName)
		if err != nil {
			return ctrl.Result{}, err
		}
		if elsewhere {
			// Another deployment runs this type: give the row up if this one holds it (it was
			// recorded here before that deployment served the type), so that one claims it.
			return r.handOver(ctx, nn, uid, nil)
		}
	}

	view, tracked := r.journal.View(uid)
	if !tracked && !r.mayAdopt() && !r.tasks.readopting(uid) {
		return ctrl.Result{}, nil // the leader adopts it; a new leader looks at every task
	}
	if !tracked {
		var res ctrl.Result
		var err error
		if view, res, tracked, err = r.adopt(ctx, &bt); !tracked || err != nil {
			return res, err
		}
	}
	if view.Ownership.Lost() {
		return r.release(ctx, &bt, view)
	}
	now := r.clock.Now()
	r.journal.SetDesired(uid, desiredAt(bt.Spec.State, timeOf(bt.Spec.ResumeAt), view.Record.Status, now).Lifecycle())
	snap, inRunner := r.runner.Snapshot(runner.Key(uid))
	in := decisionInput{
		Desired:           bt.Spec.State,
		RestartGeneration: bt.Spec.RestartGeneration,
		MaxRetries:        int(bt.Spec.MaxRetries),
		Record:            view.Record,
		HasCheckpoint:     len(view.Checkpoint) > 0,
		Handed:            view.HandedAttempt > 0 && view.HandedAttempt >= view.Record.Attempt,
		RunnerActive:      inRunner && !snap.Status.Terminal(),
		Backoff:           backoffOf(bt.Spec),
		JitterSeed:        jitterSeed(uid),
		PauseTimeout:      durationOf(bt.Spec.PauseTimeout),
		StallTimeout:      durationOf(bt.Spec.StallTimeout),
		StartAfter:        timeOf(bt.Spec.StartAfter),
		ResumeAt:          timeOf(bt.Spec.ResumeAt),
		Now:               now,
	}
	if in.RunnerActive && snap.Attempt == view.Record.Attempt {
		in.LastActivity = snap.LastActivity
	}
	d, err := r.queueGate(ctx, &bt, view, in, decide(in))
	if err != nil {
		return ctrl.Result{}, err
	}
	if d.Action != actNone {
		logf.FromContext(ctx).V(1).Info("acting", "action", d.Action, "policy", d.Policy, "why", d.Why, "attempt", d.Attempt)
	}
	if err = r.act(ctx, &bt, view, d); err != nil {
		if errors.Is(err, errDeferred) {
			return ctrl.Result{RequeueAfter: deferRecheck}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: d.RequeueAfter}, nil
}

// mayAdopt reports whether this replica takes on tasks it does not run yet: with sharding, those
// assigned to it (checked before); without, only the leader does, so that one replica, not all
// of them, claims each new task.
func (r *reconciler) mayAdopt() bool { return r.opts.Sharding || r.leading() }

// lookAtEveryTask queues every task of the cache for a reconcile (on becoming leader).
func (r *reconciler) lookAtEveryTask(decide *kit.Wake) {
	var tasks v1alpha1.BackgroundTaskList
	if err := r.client.List(context.Background(), &tasks, client.UnsafeDisableDeepCopy); err != nil {
		return // the cache is not started yet: its initial list queues every task anyway
	}
	for i := range tasks.Items {
		decide.Notify(types.NamespacedName{Namespace: tasks.Items[i].Namespace, Name: tasks.Items[i].Name})
	}
}
