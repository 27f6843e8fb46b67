package schedule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/store"
)

// fire records the plan in slot order and acts on each slot whose row this look wrote: the
// rows that create nothing go in batches, a creating slot's row is written alone, then its
// child is created (settle). It stops at a slot another look recorded first (that look acts on
// it; this one looks again at once) and at a replacing slot that waits for the runs it stopped.
// It returns how soon to look again for either (0: no need).
func (s *Scheduler) fire(ctx context.Context, l *look, plan []plannedFiring) (time.Duration, error) {
	var batch []store.Firing
	record := func() (lost bool, won []store.Firing, err error) {
		won, lost, err = s.store.RecordFirings(ctx, batch)
		batch = batch[:0]
		s.metrics.recorded(won, s.clock.Now())
		for _, f := range won {
			if f.Outcome == store.FiringMissed {
				l.missed = append(l.missed, f)
			}
		}
		return lost, won, err
	}
	// One Warning for the slots this look missed, not one per slot: a schedule every few
	// seconds after an outage would otherwise write (and the event broadcaster keep) an Event
	// per slot. Skipped slots are what the spec asked for: no Event; all are in the history.
	defer s.reportMissed(l)
	for _, f := range plan {
		row := store.Firing{ScheduleUID: string(l.ts.UID), Namespace: l.ts.Namespace, Schedule: l.ts.Name, Slot: f.Slot,
			Outcome: f.Outcome, Reason: f.Reason, TaskName: f.Child, RecordedBy: s.identity}
		if f.Exists {
			uid := string(childUID(l.children, f.Child))
			row.ChildUID = &uid
		}
		batch = append(batch, row)
		if !f.Outcome.Created() {
			continue
		}
		lost, won, err := record()
		if err != nil || lost {
			return lostRetry(lost), err
		}
		if f.Exists {
			l.newest = f.Slot
			continue
		}
		done, after, err := s.settle(ctx, l, won[len(won)-1], true)
		if err != nil || !done {
			return after, err
		}
	}
	lost, _, err := record()
	return lostRetry(lost), err
}

// lostRetry is how soon to look again after another look recorded a slot first.
func lostRetry(lost bool) time.Duration {
	if lost {
		return kit.SettleDelay
	}
	return 0
}

func (s *Scheduler) reportMissed(l *look) {
	if len(l.missed) == 0 {
		return
	}
	last := l.missed[len(l.missed)-1]
	s.events.Eventf(l.ts, nil, corev1.EventTypeWarning, "Missed", "Fire", "%d slot(s) missed, the newest %s: %s",
		len(l.missed), last.Slot.UTC().Format(time.RFC3339), last.Reason)
	l.missed = nil
}

// settleAll settles the rows of earlier looks whose child is still to be created, oldest first.
// blocked: one of them waits (the runs it replaces are still ending, or its create failed), and
// the slots after it wait with it.
func (s *Scheduler) settleAll(ctx context.Context, l *look, rows []store.Firing) (after time.Duration, blocked bool, err error) {
	for _, row := range rows {
		done, after, err := s.settle(ctx, l, row, false)
		if err != nil || !done {
			return after, true, err
		}
	}
	return 0, false, nil
}

// settle brings about the child of a created or replaced row: it finds it (created by a look
// that stopped before recording it), or stops the runs it replaces and waits for them to end
// (at most replaceWait), then creates it; the row then records its UID. A child that ran and
// was deleted before its row recorded it is recognised by its task row and never created again.
// fresh: the row was written by this look (its child cannot exist yet). done false: look again
// after the returned duration.
func (s *Scheduler) settle(ctx context.Context, l *look, row store.Firing, fresh bool) (done bool, after time.Duration, err error) {
	if uid := childUID(l.children, row.TaskName); uid != "" {
		return true, 0, s.settled(ctx, l, row, string(uid))
	}
	if !fresh {
		uid, ok, err := s.store.TaskCreatedSince(ctx, row.Namespace, row.TaskName, row.RecordedAt.Add(-time.Minute))
		if err != nil {
			return false, 0, err
		}
		if ok {
			return true, 0, s.settled(ctx, l, row, uid)
		}
	}
	if row.Outcome == store.FiringReplaced {
		ending, err := s.stopEarlier(ctx, l, row.Slot)
		if err != nil {
			return false, 0, err
		}
		deadline := row.Slot.Add(jitterOf(l.ts.Spec.Jitter, string(l.ts.UID), row.Slot)).Add(replaceWait)
		if ending > 0 && l.now.Before(deadline) {
			return false, min(settleRetry, deadline.Sub(l.now)), nil // a replaced run's end wakes the schedule too
		}
	}
	uid, err := s.createChild(ctx, l.ts, row.TaskName, row.Slot, row.Manual)
	var refused *refusedError
	if errors.As(err, &refused) {
		s.templates.refused(l.ts)
		row.Outcome, row.TaskName = store.FiringMissed, ""
		row.Reason = kit.TruncateRunes("Refused: the API server refused the slot's BackgroundTask: "+refused.err.Error(), 1000)
		l.missed = append(l.missed, row)
		return true, 0, s.store.SettleRefused(ctx, row.ID, row.Reason)
	}
	if err != nil {
		return false, 0, err
	}
	l.changed = true
	return true, 0, s.settled(ctx, l, row, string(uid))
}

// settled records the child's UID in its row.
func (s *Scheduler) settled(ctx context.Context, l *look, row store.Firing, uid string) error {
	if err := s.store.SettleChild(ctx, row.ID, uid); err != nil {
		return err
	}
	if !row.Manual && row.Slot.After(l.newest) {
		l.newest = row.Slot
	}
	return nil
}

// stopEarlier sets Stopped every active child of a slot before slot (concurrencyPolicy
// Replace), as a user would, and counts those not ended yet.
func (s *Scheduler) stopEarlier(ctx context.Context, l *look, slot time.Time) (ending int, err error) {
	for i := range l.children {
		bt := &l.children[i]
		if bt.Status.Phase.Terminal() || !childSlot(bt).Before(slot) {
			continue
		}
		ending++
		if bt.Spec.State == v1alpha1.DesiredStopped {
			continue
		}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"state":"Stopped"}}`))
		if err := s.client.Patch(ctx, bt, patch); err != nil && !apierrors.IsNotFound(err) {
			return ending, fmt.Errorf("stop %s/%s to replace it: %w", bt.Namespace, bt.Name, err)
		}
		l.changed = true
	}
	return ending, nil
}

// createChild creates the BackgroundTask name of a slot (or of a manual run) and returns its
// UID. AlreadyExists is an earlier create of the same slot, whose UID is read back; an object
// of that name this schedule does not control, or one the API server refuses for good, is a
// refusedError.
func (s *Scheduler) createChild(ctx context.Context, ts *v1alpha1.TaskSchedule, name string, slot time.Time, manual bool) (_ types.UID, err error) {
	bt, err := childOf(ts, name, slot, manual, s.client)
	if err != nil {
		return "", err
	}
	if s.tracer != nil {
		var span trace.Span
		ctx, span = s.startFiring(ctx, ts, bt, slot, manual)
		defer func() { endFiring(span, err) }()
	}
	err = s.client.Create(ctx, bt)
	switch {
	case err == nil:
		return bt.UID, nil
	case apierrors.IsAlreadyExists(err):
		existing := &v1alpha1.BackgroundTask{}
		if err := s.api.Get(ctx, client.ObjectKeyFromObject(bt), existing); err != nil {
			return "", fmt.Errorf("read %s/%s, created for slot %s: %w", bt.Namespace, bt.Name, slot.UTC().Format(time.RFC3339), err)
		}
		if !metav1.IsControlledBy(existing, ts) {
			return "", &refusedError{err: fmt.Errorf("a BackgroundTask named %s exists and this schedule did not create it", name)}
		}
		return existing.UID, nil
	case apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err):
		return "", &refusedError{err: err} // retrying cannot help: the slot is recorded missed
	}
	return "", fmt.Errorf("create %s/%s for slot %s: %w", bt.Namespace, bt.Name, slot.UTC().Format(time.RFC3339), err)
}

// childOf is the BackgroundTask a slot (or a manual run) of ts creates.
func childOf(ts *v1alpha1.TaskSchedule, name string, slot time.Time, manual bool, c client.Client) (*v1alpha1.BackgroundTask, error) {
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ts.Namespace, Labels: map[string]string{}, Annotations: map[string]string{}},
		Spec:       *ts.Spec.Template.Spec.DeepCopy(),
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
	bt.Labels[v1alpha1.LabelSlot] = strconv.FormatInt(slot.Unix(), 10)
	if manual {
		bt.Labels[v1alpha1.LabelManual] = "true"
	}
	if err := controllerutil.SetControllerReference(ts, bt, c.Scheme()); err != nil {
		return nil, fmt.Errorf("create %s: %w", bt.Name, err)
	}
	return bt, nil
}

// refusedError is a child the API server refuses for good (validation, admission policy).
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// childUID is the UID of the child named name, if it exists.
func childUID(children []v1alpha1.BackgroundTask, name string) types.UID {
	for i := range children {
		if children[i].Name == name {
			return children[i].UID
		}
	}
	return ""
}

// childSlot is the slot (or run-now request time, to the second) a child was created for.
func childSlot(bt *v1alpha1.BackgroundTask) time.Time {
	n, _ := strconv.ParseInt(bt.Labels[v1alpha1.LabelSlot], 10, 64)
	return time.Unix(n, 0)
}

// scheduledChildren is what planFirings needs of the children: a run-now child is active like
// any other, but it is no slot's child.
func scheduledChildren(children []v1alpha1.BackgroundTask) []scheduledChild {
	out := make([]scheduledChild, 0, len(children))
	for i := range children {
		bt := &children[i]
		out = append(out, scheduledChild{Name: bt.Name, Slot: childSlot(bt), Active: !bt.Status.Phase.Terminal(),
			Manual: bt.Labels[v1alpha1.LabelManual] == "true"})
	}
	return out
}
