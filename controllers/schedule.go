package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
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
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskschedules,verbs=get;list;watch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskschedules/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskschedules/finalizers,verbs=update
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=backgroundtasks,verbs=create

// scheduler fires TaskSchedules: at each slot it records the slot's outcome in PostgreSQL and
// creates the slot's BackgroundTask. Only the leader fires; exactly once per slot rests on the
// database and the API server, not on leadership: the child's name is derived from the slot
// (a second create is AlreadyExists) and the slot's row is unique (a second insert does
// nothing), so two operators that both believe they lead still fire a slot once.
type scheduler struct {
	client client.Client
	// children reads a schedule's BackgroundTasks: the cache, or with sharding (where this
	// replica caches only its own share) the API server.
	children client.Reader
	store    *store.Repository
	clock    clock.PassiveClock
	events   events.EventRecorder
	leading  func() bool
	identity string
	workers  int
	log      logr.Logger
}

func (s *scheduler) setupWithManager(mgr ctrl.Manager, look *wake) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.TaskSchedule{}).
		// A child that ends frees a Forbid schedule and may be past its history limit.
		// Only a child's phase matters here (active or ended); its progress and other status
		// writes would cost a look, with a database query, each.
		Watches(&v1alpha1.BackgroundTask{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(),
			&v1alpha1.TaskSchedule{}, handler.OnlyControllerOwner()), builder.WithPredicates(phaseChanged())).
		WatchesRawSource(look.source()).
		// Many schedules share a slot (every hour on the hour): look at them in parallel.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), CacheSyncTimeout: cacheSyncForever,
			MaxConcurrentReconciles: s.workers}).
		Named("taskschedule").
		Complete(s)
}

// lookAtEverySchedule queues every schedule (on becoming leader: slots that passed while no
// replica led are caught up as spec.catchUp says).
func (s *scheduler) lookAtEverySchedule(look *wake) {
	var list v1alpha1.TaskScheduleList
	if err := s.client.List(context.Background(), &list); err != nil {
		return // the cache is not started yet: its initial list queues every schedule
	}
	for i := range list.Items {
		look.notify(types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name})
	}
}

// Reconcile gathers (the schedule, its children, its last recorded slot), plans the passed
// slots (planFirings, pure), acts (stop, create, record, in slot order), trims the history and
// writes the status if it changed.
func (s *scheduler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if !s.leading() {
		return ctrl.Result{}, nil // the leader fires; a new one looks at every schedule
	}
	var ts v1alpha1.TaskSchedule
	if err := s.client.Get(ctx, req.NamespacedName, &ts); err != nil {
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
		return ctrl.Result{}, s.writeStatus(ctx, &ts, *next)
	}
	children, err := s.listChildren(ctx, &ts)
	if err != nil {
		return ctrl.Result{}, err
	}
	last, found, err := s.store.LastFiring(ctx, string(ts.UID))
	if err != nil {
		return ctrl.Result{}, err
	}
	from := ts.CreationTimestamp.Time // slots after the schedule exists
	if found && last.Slot.After(from) {
		from = last.Slot
	}
	slots, dropped := cron.slotsBetween(from, now, maxSlotsPerPass)
	plan, wait := planFirings(firingInput{Schedule: ts.Name, Slots: slots, Dropped: dropped, Now: now, Spec: ts.Spec,
		Active: activeChildren(children), JitterSeed: string(ts.UID)})
	lastCreated, err := s.fire(ctx, &ts, plan, children)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := s.runNow(ctx, &ts); err != nil {
		return ctrl.Result{}, err
	}
	if lastCreated.IsZero() && ts.Status.LastScheduleTime != nil {
		lastCreated = ts.Status.LastScheduleTime.Time
	}
	if len(plan) > 0 { // what fire changed
		if children, err = s.listChildren(ctx, &ts); err != nil {
			return ctrl.Result{}, err
		}
	}
	s.trimHistory(ctx, &ts, children)

	nextSlot := cron.next(now)
	status := v1alpha1.TaskScheduleStatus{
		LastScheduleTime: apiTime(lastCreated), NextScheduleTime: apiTime(nextSlot), ObservedGeneration: ts.Generation,
		Active: activeChildren(children), Conditions: append([]metav1.Condition(nil), ts.Status.Conditions...),
	}
	status.ActiveCount = int32(len(status.Active)) //nolint:gosec // bounded by the children listed
	switch {
	case ts.Spec.Suspend:
		setScheduleReady(&status, ts.Generation, metav1.ConditionTrue, "Suspended", "spec.suspend is true: slots are recorded skipped")
	case nextSlot.IsZero():
		setScheduleReady(&status, ts.Generation, metav1.ConditionTrue, "NoMoreSlots", "the schedule names no future time")
	default:
		setScheduleReady(&status, ts.Generation, metav1.ConditionTrue, "Scheduling", "firing at every slot of "+ts.Spec.Schedule)
	}
	if err := s.writeStatus(ctx, &ts, status); err != nil {
		return ctrl.Result{}, err
	}
	after := wait
	if !nextSlot.IsZero() {
		due := nextSlot.Add(jitterOf(ts.Spec.Jitter, string(ts.UID), nextSlot)).Sub(now)
		if after == 0 || due < after {
			after = due
		}
	}
	return ctrl.Result{RequeueAfter: max(after, time.Millisecond)}, nil
}

// fire acts on the plan in slot order: the outcomes that create nothing are recorded in
// batches, each child is created (after stopping what it replaces) before its row is written,
// so a crash in between leaves a child whose slot the next look records, never a row without
// its child. It returns the newest slot that created a child.
func (s *scheduler) fire(ctx context.Context, ts *v1alpha1.TaskSchedule, plan []plannedFiring,
	children []v1alpha1.BackgroundTask) (time.Time, error) {
	exists := map[string]bool{}
	for i := range children {
		exists[children[i].Name] = true
	}
	var pending []store.Firing
	var missed []store.Firing
	flush := func() error {
		recorded, err := s.store.RecordFirings(ctx, pending)
		for _, f := range recorded {
			if f.Outcome == store.FiringMissed {
				missed = append(missed, f)
			}
		}
		pending = pending[:0]
		return err
	}
	// One Warning for the slots this look missed, not one per slot: a schedule every few
	// seconds after an outage would otherwise write (and the event broadcaster keep) an Event
	// per slot. Skipped slots are what the spec asked for: no Event; all are in the history.
	defer func() {
		if len(missed) > 0 {
			last := missed[len(missed)-1]
			s.events.Eventf(ts, nil, corev1.EventTypeWarning, "Missed", "Fire", "%d slot(s) missed, the newest %s: %s",
				len(missed), last.Slot.UTC().Format(time.RFC3339), last.Reason)
		}
	}()
	var newest time.Time
	for _, f := range plan {
		row := store.Firing{ScheduleUID: string(ts.UID), Namespace: ts.Namespace, Schedule: ts.Name, Slot: f.Slot,
			Outcome: f.Outcome, Reason: f.Reason, TaskName: f.Child, RecordedBy: s.identity}
		act := true
		if !f.Outcome.Created() {
			if name := childName(ts.Name, f.Slot); exists[name] {
				act = false
				// Created by a look that crashed before its row: the slot did create it.
				row.Outcome, row.TaskName, row.Reason = store.FiringCreated, name, "created by an earlier look; recorded late"
			} else {
				pending = append(pending, row)
				continue
			}
		}
		if err := flush(); err != nil {
			return newest, err
		}
		if act {
			for _, name := range f.Stop {
				if err := s.stopChild(ctx, ts.Namespace, name); err != nil {
					return newest, err
				}
			}
			if err := s.createChild(ctx, ts, f.Child, f.Slot, false); err != nil {
				var refused *refusedError
				if !errors.As(err, &refused) {
					return newest, err
				}
				row.Outcome, row.TaskName = store.FiringMissed, ""
				row.Reason = truncateRunes("Refused: the API server refused the slot's BackgroundTask: "+refused.err.Error(), 1000)
				pending = append(pending, row)
				continue
			}
		}
		// No Event for a slot that created its child: the child and the status say it, and an
		// Event per firing is an API write per firing. Skipped and missed slots get one.
		if _, err := s.store.RecordFirings(ctx, []store.Firing{row}); err != nil {
			return newest, err
		}
		newest = f.Slot
	}
	return newest, flush()
}

// createChild creates the BackgroundTask name of a slot (or of a manual run); AlreadyExists
// means another look created it.
func (s *scheduler) createChild(ctx context.Context, ts *v1alpha1.TaskSchedule, name string, slot time.Time, manual bool) error {
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ts.Namespace,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		},
		Spec: *ts.Spec.Template.Spec.DeepCopy(),
	}
	for k, v := range ts.Spec.Template.Metadata.Labels {
		if !strings.HasPrefix(k, v1alpha1.Group+"/") { // the operator's own (assignment, schedule) labels are not a tenant's to set
			bt.Labels[k] = v
		}
	}
	for k, v := range ts.Spec.Template.Metadata.Annotations {
		bt.Annotations[k] = v
	}
	bt.Labels[v1alpha1.LabelSchedule] = ts.Name
	bt.Labels[v1alpha1.LabelSlot] = fmt.Sprint(slot.Unix())
	if manual {
		bt.Labels[v1alpha1.LabelManual] = "true"
	}
	if err := controllerutil.SetControllerReference(ts, bt, s.client.Scheme()); err != nil {
		return fmt.Errorf("create %s: %w", bt.Name, err)
	}
	err := s.client.Create(ctx, bt)
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
		return &refusedError{err: err} // retrying cannot help: the slot is recorded missed
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s/%s for slot %s: %w", bt.Namespace, bt.Name, slot.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// runNow creates the one child a run-now request asks for (the annotation
// tasks.taskpilot.dev/run-now, set by `kubectl taskpilot run-now`), once per request time,
// whatever spec.suspend and concurrencyPolicy say: it is an explicit request, as `kubectl
// create job --from=cronjob/...` is. The request stays on the object; its row makes it done.
func (s *scheduler) runNow(ctx context.Context, ts *v1alpha1.TaskSchedule) error {
	value, ok := ts.Annotations[v1alpha1.AnnotationRunNow]
	if !ok {
		return nil
	}
	at, err := time.Parse(time.RFC3339, value)
	if err != nil {
		s.log.Info("ignoring a run-now request that is not an RFC 3339 time", "schedule", ts.Name, "value", value)
		return nil
	}
	at = at.Truncate(time.Second)
	if done, err := s.store.HasFiring(ctx, string(ts.UID), at, true); err != nil || done {
		return err
	}
	row := store.Firing{ScheduleUID: string(ts.UID), Namespace: ts.Namespace, Schedule: ts.Name, Slot: at, Manual: true,
		Outcome: store.FiringCreated, TaskName: manualChildName(ts.Name, at), RecordedBy: s.identity,
		Reason: "run now: requested with the " + v1alpha1.AnnotationRunNow + " annotation"}
	if err := s.createChild(ctx, ts, row.TaskName, at, true); err != nil {
		var refused *refusedError
		if !errors.As(err, &refused) {
			return err
		}
		row.Outcome, row.TaskName = store.FiringMissed, ""
		row.Reason = truncateRunes("Refused: the API server refused the run's BackgroundTask: "+refused.err.Error(), 1000)
	}
	recorded, err := s.store.RecordFirings(ctx, []store.Firing{row})
	if err == nil && len(recorded) == 1 {
		s.events.Eventf(ts, nil, corev1.EventTypeNormal, "RunNow", "Fire", "run now requested at %s: %s %s",
			value, row.Outcome, nonEmpty(row.TaskName, row.Reason))
	}
	return err
}

// manualChildName is the BackgroundTask of a run-now request at.
func manualChildName(schedule string, at time.Time) string {
	return schedule + "-manual-" + fmt.Sprint(at.Unix())
}

// refusedError is a child the API server refuses for good (validation, admission policy).
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// stopChild sets a child Stopped (concurrencyPolicy Replace), as a user would.
func (s *scheduler) stopChild(ctx context.Context, namespace, name string) error {
	bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	err := s.client.Patch(ctx, bt, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"state":"Stopped"}}`)))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("stop %s/%s to replace it: %w", namespace, name, err)
	}
	return nil
}

// listChildren lists the BackgroundTasks this schedule created.
func (s *scheduler) listChildren(ctx context.Context, ts *v1alpha1.TaskSchedule) ([]v1alpha1.BackgroundTask, error) {
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
func (s *scheduler) trimHistory(ctx context.Context, ts *v1alpha1.TaskSchedule, children []v1alpha1.BackgroundTask) {
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

func (s *scheduler) writeStatus(ctx context.Context, ts *v1alpha1.TaskSchedule, next v1alpha1.TaskScheduleStatus) error {
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
		Message: truncateRunes(msg, maxStatusMessage), ObservedGeneration: generation})
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
