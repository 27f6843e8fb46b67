package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/store"
)

// queuePlace is what this process knows of a task's place in its queue (spec.queue). PostgreSQL
// holds the truth (background_tasks.queue_state); this only saves asking it on every look of a
// waiting task. seq is the record's when the task asked: any transition since (a pause, an
// end) may have given the place back, so the next start asks again.
type queuePlace struct {
	queue    string
	seq      int64
	admitted bool
}

// queueGate holds back a start or a resume of a task that names a queue until PostgreSQL gives
// it a place (store.AskQueue, store.Admit): the decision stands only once the queue admitted the
// task. A task that no longer wants to start gives its request, or an unused place, back. It
// also parks the running tasks of a queue paused with drain Pause.
func (r *reconciler) queueGate(ctx context.Context, bt *v1alpha1.BackgroundTask, view journal.View, in decisionInput, d decision) (decision, error) {
	uid, queue := string(bt.UID), bt.Spec.Queue
	place, known := r.tasks.placeOf(uid)
	rec := view.Record
	wants := d.Action == actStart || d.Action == actResume
	if !wants {
		if known {
			if err := r.leaveUnwanted(ctx, bt, view, in, place); err != nil {
				return d, err
			}
		}
		if queue != "" && in.RunnerActive && rec.Status == lifecycle.Running && d.Action == actNone && r.drains(ctx, bt.Namespace, queue) {
			return decision{Action: actPause, Why: "queue " + queue + " is paused with drain Pause", Policy: "QueueDrain"}, nil
		}
		r.setQueueWhy(bt, "")
		return d, nil
	}
	if queue == "" {
		if known {
			if err := r.leaveQueue(ctx, bt, place.queue, true); err != nil {
				return d, err
			}
		}
		return d, nil
	}
	wait := decision{Action: actNone, Policy: "WaitForTheQueue", Why: "waiting for a place in queue " + queue}
	if view.Backlog > 0 {
		// The place is asked for from the row as it is committed: a transition on its way may
		// give back the place the row still shows.
		wait.RequeueAfter, wait.Why = deferRecheck, "waiting for the record to be written before asking queue "+queue
		return wait, nil
	}
	if known && place.queue == queue && place.seq == rec.Seq && !place.admitted && r.admitter.isWaiting(uid, bt.Namespace, queue) {
		return wait, nil // the admitter wakes it when the queue admits it
	}
	dbctx, cancel := context.WithTimeout(ctx, r.opts.DatabaseTimeout)
	defer cancel()
	admitted, err := r.store.AskQueue(dbctx, store.QueueAsk{UID: uid, Owner: r.member.Owner(), Queue: queue,
		Priority: int(bt.Spec.Priority), FairValue: r.fairValue(ctx, bt, queue), At: r.clock.Now()})
	if err != nil {
		return wait, fmt.Errorf("ask queue %s for a place: %w", queue, err)
	}
	nn := types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name}
	r.tasks.setPlace(uid, queuePlace{queue: queue, seq: rec.Seq, admitted: admitted})
	if admitted {
		r.admitter.forget(uid)
		r.setQueueWhy(bt, "")
		return d, nil
	}
	r.admitter.wait(bt.Namespace, queue, uid, nn)
	if r.tasks.queueWhyOf(uid) == "" {
		r.setQueueWhy(bt, r.admitter.why(bt.Namespace, queue))
	}
	return wait, nil
}

// leaveUnwanted handles a task that asked its queue (place) and no longer wants to start: a
// request, or a place it has not used, is given back (a Pending task that runs nowhere here, or
// a Paused one that asked to resume and was paused again: its record did not move since it
// asked); a place its transitions gave back (a run that paused or ended since) is only
// forgotten here, and the queue told, so another task gets it at once. A Pending task the
// runner holds (waiting for a runner slot, or handed and not started yet) keeps its place: it
// runs next; so does a Running one (its transitions give it back).
func (r *reconciler) leaveUnwanted(ctx context.Context, bt *v1alpha1.BackgroundTask, view journal.View, in decisionInput, place queuePlace) error {
	rec := view.Record
	switch {
	case rec.Status == lifecycle.Running, rec.Status == lifecycle.Pending && (in.RunnerActive || in.settling()):
		return nil
	case view.Backlog > 0:
		return nil // looked at again once committed
	case rec.Status == lifecycle.Pending, rec.Status == lifecycle.Paused && place.seq == rec.Seq:
		return r.leaveQueue(ctx, bt, place.queue, false)
	}
	r.tasks.dropPlace(string(bt.UID))
	r.admitter.forget(string(bt.UID))
	r.admitter.poke(bt.Namespace, place.queue)
	return nil
}

// leaveQueue gives back uid's request or unused place; forget also forgets the queue (the spec
// names none any more).
func (r *reconciler) leaveQueue(ctx context.Context, bt *v1alpha1.BackgroundTask, queue string, forget bool) error {
	uid := string(bt.UID)
	dbctx, cancel := context.WithTimeout(ctx, r.opts.DatabaseTimeout)
	defer cancel()
	if err := r.store.LeaveQueue(dbctx, uid, r.member.Owner(), forget); err != nil {
		return err
	}
	r.tasks.dropPlace(uid)
	r.admitter.forget(uid)
	r.admitter.poke(bt.Namespace, queue)
	r.setQueueWhy(bt, "")
	return nil
}

// setQueueWhy records why the task waits for its queue, and reports it when that changed.
func (r *reconciler) setQueueWhy(bt *v1alpha1.BackgroundTask, why string) {
	if r.tasks.setQueueWhy(string(bt.UID), why) {
		r.report(types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name})
	}
}

// fairValue is the task's tenant in its queue: the value of the queue's fairness label.
func (r *reconciler) fairValue(ctx context.Context, bt *v1alpha1.BackgroundTask, queue string) string {
	var q v1alpha1.TaskQueue
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: bt.Namespace, Name: queue}, &q); err != nil || q.Spec.Fairness == nil {
		return ""
	}
	return bt.Labels[q.Spec.Fairness.Key]
}

// drains reports whether the queue is paused with drain Pause: its running tasks park.
func (r *reconciler) drains(ctx context.Context, namespace, queue string) bool {
	var q v1alpha1.TaskQueue
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: queue}, &q); err != nil {
		return false // none (or not readable): nothing to drain for
	}
	return q.Spec.Drain == v1alpha1.DrainPause && q.Spec.PausedAt(r.clock.Now())
}

// queueWaitMessage says why tasks wait for their queue, from an admission round: what a task
// that begins to wait shows (its status keeps it while the reason stays the same kind, so a
// busy queue does not rewrite every waiting task's status at each start).
func queueWaitMessage(queue string, a store.Admission) string {
	switch {
	case a.Missing:
		return fmt.Sprintf("queue %q does not exist: the task starts once a TaskQueue of that name is created (%d waiting for it)", queue, a.Waiting)
	case a.Paused && a.Until != nil:
		return fmt.Sprintf("queue %q is paused until %s (%d waiting)", queue, a.Until.UTC().Format(time.RFC3339), a.Waiting)
	case a.Paused:
		return fmt.Sprintf("queue %q is paused (%d waiting)", queue, a.Waiting)
	case a.RateLimited:
		return fmt.Sprintf("queue %q is at its rate limit (%d of %d running, %d waiting)", queue, a.Running, a.Concurrency, a.Waiting)
	}
	return fmt.Sprintf("queue %q reports: %d of %d running; %d waiting", queue, a.Running, a.Concurrency, a.Waiting)
}
