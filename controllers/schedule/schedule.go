package schedule

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/store"
)

// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskschedules,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskschedules/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskschedules/finalizers,verbs=update
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=backgroundtasks,verbs=create

// Scheduler fires TaskSchedules: at each slot it records the slot's outcome in PostgreSQL, then
// creates the slot's BackgroundTask. The row decides: it is written first, unique per slot, and
// only the look whose insert wins acts on the slot, so two operators that both believe they lead
// fire a slot once and never disagree about it (a child under a `skipped` row). A crash between
// the insert and the create leaves a row whose child is still to be created (child_uid NULL),
// which the next look creates; the row then records the child's UID.
type Scheduler struct {
	client client.Client
	// children reads a schedule's BackgroundTasks: the cache, or with sharding (where this
	// replica caches only its own share) the API server.
	children client.Reader
	// api reads from the API server (a child whose create said AlreadyExists).
	api       client.Reader
	store     *store.Repository
	clock     clock.PassiveClock
	events    events.EventRecorder
	leading   func() bool
	identity  string
	workers   int
	templates templateChecks
	metrics   *metrics
	tracer    trace.Tracer
	log       logr.Logger
}

// Options configure a Scheduler.
type Options struct {
	// Client reads the schedules (cached) and writes their status and children.
	Client client.Client
	// Children reads a schedule's BackgroundTasks: the cache, or with sharding (where this
	// replica caches only its own share) the API server.
	Children client.Reader
	// API reads from the API server (a child whose create said AlreadyExists).
	API      client.Reader
	Store    *store.Repository
	Clock    clock.PassiveClock
	Events   events.EventRecorder
	Leading  func() bool
	Identity string
	// Workers is how many schedules are looked at in parallel.
	Workers int
	// Metrics registers the controller's metrics (none when nil).
	Metrics prometheus.Registerer
	// Tracer, when set, makes a span per child created (taskpilot.fire); the child's
	// traceparent annotation makes its runs' spans children of it.
	Tracer trace.Tracer
	Log    logr.Logger
}

// New returns the schedule controller; SetupWithManager adds it.
func New(o Options) (*Scheduler, error) {
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	return &Scheduler{client: o.Client, children: o.Children, api: o.API, store: o.Store, clock: o.Clock,
		events: o.Events, leading: o.Leading, identity: o.Identity, workers: o.Workers, metrics: m, tracer: o.Tracer, log: o.Log}, nil
}

// replaceWait bounds how long a replacing slot waits for the runs it stopped to end before it
// starts its own (concurrencyPolicy Replace): a run that ignores its stop does not hold the
// schedule back for longer.
const replaceWait = 30 * time.Second

// settleRetry is how soon to look again at a slot waiting for the runs it replaces.
const settleRetry = time.Second

// SetupWithManager adds the controller to mgr; look queues schedules by hand
// (LookAtEverySchedule).
func (s *Scheduler) SetupWithManager(mgr ctrl.Manager, look *kit.Wake) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.TaskSchedule{}).
		// A child that ends frees a Forbid schedule, lets a Replace slot start and may be past
		// its history limit. Only a child's phase matters here (active or ended); its progress
		// and other status writes would cost a look, with a database query, each.
		Watches(&v1alpha1.BackgroundTask{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(),
			&v1alpha1.TaskSchedule{}, handler.OnlyControllerOwner()), builder.WithPredicates(phaseChanged())).
		WatchesRawSource(look.Source()).
		// Many schedules share a slot (every hour on the hour): look at them in parallel.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), CacheSyncTimeout: kit.CacheSyncForever,
			MaxConcurrentReconciles: s.workers}).
		Named("taskschedule").
		Complete(kit.LeaderOnly(s.leading, s))
}

// LookAtEverySchedule queues every schedule (on becoming leader: slots that passed while no
// replica led are caught up as spec.catchUp says).
func (s *Scheduler) LookAtEverySchedule(look *kit.Wake) {
	var list v1alpha1.TaskScheduleList
	if err := s.client.List(context.Background(), &list); err != nil {
		return // the cache is not started yet: its initial list queues every schedule
	}
	for i := range list.Items {
		look.Notify(types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name})
	}
}

// Reconcile gathers (the schedule, its children, its book in PostgreSQL), settles the slots of
// earlier looks whose child is still to be created, plans the passed slots (planFirings, pure),
// acts (record, then stop and create, in slot order), trims the history and writes the status
// if it changed. SetupWithManager runs it only while this replica leads (the leader fires; a new
// one looks at every schedule).
func (s *Scheduler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ts v1alpha1.TaskSchedule
	if err := s.client.Get(ctx, req.NamespacedName, &ts); err != nil {
		if apierrors.IsNotFound(err) {
			s.templates.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ts.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	now := s.clock.Now()
	cron, err := parseSchedule(ts.Spec.Schedule, ts.Spec.TimeZone)
	if err != nil {
		next := ts.Status.DeepCopy()
		next.ObservedGeneration, next.NextScheduleTime = ts.Generation, nil
		setScheduleReady(next, ts.Generation, metav1.ConditionFalse, "InvalidSchedule", err.Error())
		return ctrl.Result{}, s.writeStatus(ctx, &ts, *next) // looked at again when the spec changes
	}
	children, err := s.listChildren(ctx, &ts)
	if err != nil {
		return ctrl.Result{}, err
	}
	book, err := s.store.ScheduleBook(ctx, string(ts.UID))
	if err != nil {
		return ctrl.Result{}, err
	}
	from, current, err := s.effectiveFrom(ctx, &ts, book.Revision, now)
	if err != nil || !current {
		// !current: another look recorded a newer generation than this cache holds.
		return ctrl.Result{RequeueAfter: settleRetry}, err
	}
	refused := s.templates.refusal(ctx, s.client, &ts, now)

	l := look{ts: &ts, children: children, now: now}
	after, blocked, err := s.settleAll(ctx, &l, book.Unsettled)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !blocked {
		if book.Last != nil && book.Last.Slot.After(from) {
			from = book.Last.Slot
		}
		slots, dropped := cron.slotsBetween(from, now, maxSlotsPerPass)
		plan, wait := planFirings(firingInput{Schedule: ts.Name, Slots: slots, Dropped: dropped, Now: now, Spec: ts.Spec,
			Children: scheduledChildren(children), JitterSeed: string(ts.UID), Refused: refused})
		fired, err := s.fire(ctx, &l, plan)
		if err != nil {
			return ctrl.Result{}, err
		}
		after = soonest(after, wait, fired)
	}
	if err := s.runNow(ctx, &l); err != nil {
		return ctrl.Result{}, err
	}
	if l.changed { // what this look created or stopped
		if l.children, err = s.listChildren(ctx, &ts); err != nil {
			return ctrl.Result{}, err
		}
	}
	s.trimHistory(ctx, &ts, l.children)

	nextSlot := cron.next(now)
	if err := s.writeStatus(ctx, &ts, scheduleStatus(&ts, l, nextSlot, refused)); err != nil {
		return ctrl.Result{}, err
	}
	if !nextSlot.IsZero() {
		after = soonest(after, nextSlot.Add(jitterOf(ts.Spec.Jitter, string(ts.UID), nextSlot)).Sub(now))
	}
	// No next slot and nothing waiting (an impossible date such as 30 February): look again
	// only when the spec changes, never in a loop.
	return ctrl.Result{RequeueAfter: after}, nil
}

// look is one look at a schedule: what it read, and what it did.
type look struct {
	ts       *v1alpha1.TaskSchedule
	children []v1alpha1.BackgroundTask
	now      time.Time
	// newest is the newest slot this look created a child for; missed the slots it recorded
	// missed (one Event for all of them); changed: it created or stopped a child.
	newest  time.Time
	missed  []store.Firing
	changed bool
}

// scheduleStatus is the status a look shows.
func scheduleStatus(ts *v1alpha1.TaskSchedule, l look, nextSlot time.Time, refused string) v1alpha1.TaskScheduleStatus {
	last := l.newest
	if last.IsZero() && ts.Status.LastScheduleTime != nil {
		last = ts.Status.LastScheduleTime.Time
	}
	status := v1alpha1.TaskScheduleStatus{
		LastScheduleTime: kit.APITime(last), NextScheduleTime: kit.APITime(nextSlot), ObservedGeneration: ts.Generation,
		Active: activeChildren(l.children), Conditions: append([]metav1.Condition(nil), ts.Status.Conditions...),
	}
	status.ActiveCount = int32(len(status.Active)) //nolint:gosec // bounded by the children listed
	switch {
	case refused != "":
		setScheduleReady(&status, ts.Generation, metav1.ConditionFalse, reasonTemplateRefused,
			"the API server refuses the BackgroundTask of the template, so every slot is recorded missed: "+refused)
	case nextSlot.IsZero():
		setScheduleReady(&status, ts.Generation, metav1.ConditionFalse, "NoFutureSlot",
			"the schedule "+ts.Spec.Schedule+" names no time in the next five years (a date such as 30 February): nothing will fire")
	case ts.Spec.Suspend:
		setScheduleReady(&status, ts.Generation, metav1.ConditionTrue, "Suspended", "spec.suspend is true: slots are recorded skipped")
	default:
		setScheduleReady(&status, ts.Generation, metav1.ConditionTrue, "Scheduling", "firing at every slot of "+ts.Spec.Schedule)
	}
	return status
}

// effectiveFrom is the instant after which the slots of the schedule's current expression and
// time zone count: its creation, or the first look after either was edited (slots before the
// edit are not slots of the new expression, so they are neither caught up nor recorded). It
// is recorded once per generation; current is false when a newer generation is recorded than
// this look's copy of the schedule holds.
func (s *Scheduler) effectiveFrom(ctx context.Context, ts *v1alpha1.TaskSchedule, rec *store.ScheduleRevision, now time.Time) (time.Time, bool, error) {
	want := store.ScheduleRevision{ScheduleUID: string(ts.UID), Namespace: ts.Namespace, Schedule: ts.Name,
		Generation: ts.Generation, Expression: ts.Spec.Schedule, TimeZone: ts.Spec.TimeZone}
	switch {
	case rec == nil:
		want.EffectiveFrom = ts.CreationTimestamp.Time
	case rec.Generation > ts.Generation:
		return time.Time{}, false, nil
	case rec.Generation == ts.Generation:
		return rec.EffectiveFrom, true, nil
	case rec.Expression == want.Expression && rec.TimeZone == want.TimeZone:
		want.EffectiveFrom = rec.EffectiveFrom // another field changed: the slots go on
	default:
		want.EffectiveFrom = now
	}
	got, err := s.store.Revise(ctx, want)
	if err != nil {
		return time.Time{}, false, err
	}
	return got.EffectiveFrom, got.Generation == ts.Generation, nil
}

// soonest is the shortest of the positive durations (0: none).
func soonest(ds ...time.Duration) time.Duration {
	var out time.Duration
	for _, d := range ds {
		if d > 0 && (out == 0 || d < out) {
			out = d
		}
	}
	return out
}

// listChildren lists the BackgroundTasks this schedule created.
func (s *Scheduler) listChildren(ctx context.Context, ts *v1alpha1.TaskSchedule) ([]v1alpha1.BackgroundTask, error) {
	var list v1alpha1.BackgroundTaskList
	if err := s.children.List(ctx, &list, client.InNamespace(ts.Namespace),
		client.MatchingLabels{v1alpha1.LabelSchedule: ts.Name}); err != nil {
		return nil, fmt.Errorf("list the children of %s/%s: %w", ts.Namespace, ts.Name, err)
	}
	out := list.Items[:0]
	for _, bt := range list.Items {
		if metav1.IsControlledBy(&bt, ts) {
			out = append(out, bt)
		}
	}
	slices.SortFunc(out, compareSlots)
	return out, nil
}

// trimHistory deletes the oldest ended children past the history limits; their history stays
// in PostgreSQL.
func (s *Scheduler) trimHistory(ctx context.Context, ts *v1alpha1.TaskSchedule, children []v1alpha1.BackgroundTask) {
	keepFinished, keepFailed := ptr.Deref(ts.Spec.SuccessfulHistoryLimit, 3), ptr.Deref(ts.Spec.FailedHistoryLimit, 1)
	var finished, failed []*v1alpha1.BackgroundTask
	for i := range children { // oldest slot first
		switch bt := &children[i]; bt.Status.Phase {
		case v1alpha1.PhaseFinished:
			finished = append(finished, bt)
		case v1alpha1.PhaseFailed, v1alpha1.PhaseStopped:
			failed = append(failed, bt)
		case v1alpha1.PhasePending, v1alpha1.PhaseRunning, v1alpha1.PhasePaused:
			// active: never deleted
		}
	}
	for _, group := range []struct {
		tasks []*v1alpha1.BackgroundTask
		keep  int32
	}{{finished, keepFinished}, {failed, keepFailed}} {
		for i := 0; i < len(group.tasks)-int(group.keep); i++ {
			bt := group.tasks[i]
			err := s.client.Delete(ctx, bt, client.Preconditions{UID: &bt.UID, ResourceVersion: &bt.ResourceVersion})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				s.log.Info("could not delete a child past the history limit", "task", bt.Name, "error", err.Error())
			}
		}
	}
}

func (s *Scheduler) writeStatus(ctx context.Context, ts *v1alpha1.TaskSchedule, next v1alpha1.TaskScheduleStatus) error {
	if equality.Semantic.DeepEqual(ts.Status, next) {
		return nil
	}
	orig := ts.DeepCopy()
	ts.Status = next
	if err := s.client.Status().Patch(ctx, ts, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("write the status of %s/%s: %w", ts.Namespace, ts.Name, err)
	}
	return nil
}

func setScheduleReady(st *v1alpha1.TaskScheduleStatus, generation int64, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason,
		Message: kit.TruncateRunes(msg, kit.MaxStatusMessage), ObservedGeneration: generation})
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = st.Conditions[i].LastTransitionTime.Rfc3339Copy()
	}
}

// activeChildren names the children not yet Finished, Failed or Stopped, oldest slot first.
func activeChildren(children []v1alpha1.BackgroundTask) []string {
	var out []string
	for i := range children {
		if !children[i].Status.Phase.Terminal() {
			out = append(out, children[i].Name)
		}
	}
	return out
}

func compareSlots(a, b v1alpha1.BackgroundTask) int {
	slot := func(bt v1alpha1.BackgroundTask) int64 {
		n, _ := strconv.ParseInt(bt.Labels[v1alpha1.LabelSlot], 10, 64)
		return n
	}
	return cmp.Compare(slot(a), slot(b))
}

// phaseChanged passes a child's creation, deletion and phase changes, not its other updates.
func phaseChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		before, okBefore := e.ObjectOld.(*v1alpha1.BackgroundTask)
		after, okAfter := e.ObjectNew.(*v1alpha1.BackgroundTask)
		return !okBefore || !okAfter || before.Status.Phase != after.Status.Phase
	}}
}
