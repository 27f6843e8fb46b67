package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/store"
)

// adopt makes this process the owner of a task it does not track yet, from its row alone: a
// new task's row is created owned by this process (one statement); an existing row is taken
// over only when it has no owner or its owner is gone (store.Claim, a compare-and-swap on the
// fencing token). A task another live process owns is left to it: this process says so once
// (log and Event) and looks again when that owner's Lease could have expired.
func (r *reconciler) adopt(ctx context.Context, bt *v1alpha1.BackgroundTask) (journal.View, ctrl.Result, bool, error) {
	log := logf.FromContext(ctx)
	uid, nn := string(bt.UID), types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name}
	now := r.clock.Now()
	if f, ok := r.tasks.foreignOf(uid); ok && now.Before(f.recheckAt) {
		return journal.View{}, ctrl.Result{RequeueAfter: f.recheckAt.Sub(now)}, false, nil
	}
	me := r.member.Owner()
	dbctx, cancel := context.WithTimeout(ctx, r.opts.DatabaseTimeout)
	defer cancel()
	row, created, err := r.store.CreateTask(dbctx, store.NewTask{
		UID: uid, Namespace: bt.Namespace, Name: bt.Name, TaskName: bt.Spec.TaskName, Desired: bt.Spec.State.Lifecycle(),
		RestartGeneration: bt.Spec.RestartGeneration, Owner: me, At: now,
	})
	if err != nil {
		return journal.View{}, ctrl.Result{}, false, r.adoptionFailed(ctx, bt, err)
	}
	if !created {
		owner, owned := row.Owned()
		if !owned || owner.Epoch != me.Epoch {
			var gone int64
			if owned {
				verdict, err := r.member.Gone(ctx, owner)
				if err != nil {
					return journal.View{}, ctrl.Result{}, false, fmt.Errorf("is the owner of %s gone: %w", nn, err)
				}
				if !verdict.Gone {
					if !r.opts.Registry.Has(bt.Spec.TaskName) || verdict.Expiring {
						// A type nobody serves, recorded by another live operator, or an owner
						// half gone already (one of its records expired): nothing to tell, but
						// looked at again when that owner could be gone, as any other task
						// (nothing else would bring it back once its owner has stopped).
						return journal.View{}, ctrl.Result{RequeueAfter: r.recheckAfter(verdict.RecheckAfter)}, false, nil
					}
					return journal.View{}, r.ownedElsewhere(ctx, bt, owner, verdict.Why, verdict.RecheckAfter), false, nil
				}
				gone = owner.Epoch
				log.Info("taking over a task whose owner is gone", "why", verdict.Why)
				// Its other tasks too, in one statement: they are reconciled tracked already.
				if _, err := r.takeOver(ctx, owner); err != nil {
					return journal.View{}, ctrl.Result{}, false, r.adoptionFailed(ctx, bt, err)
				}
				if view, tracked := r.journal.View(uid); tracked {
					return view, ctrl.Result{}, true, nil
				}
			}
			row, err = r.store.Claim(dbctx, uid, me, gone)
			var owned *store.OwnedError
			switch {
			case errors.As(err, &owned):
				return journal.View{}, r.ownedElsewhere(ctx, bt, owned.Owner, "it claimed the task first", r.opts.LeaseDuration), false, nil
			case err != nil:
				return journal.View{}, ctrl.Result{}, false, r.adoptionFailed(ctx, bt, err)
			}
		}
	}
	r.tasks.track(nn, uid)
	r.seedPlace(row)
	view := r.journal.Track(nn, row)
	r.report(nn)
	return view, ctrl.Result{}, true, nil
}

// seedPlace remembers the place in its queue an adopted row holds or asked for, so that a task
// that no longer wants it gives it back (the process that asked may be gone).
func (r *reconciler) seedPlace(row *store.Task) {
	if row.QueueState != "" {
		r.tasks.setPlace(row.UID, queuePlace{queue: row.Queue, seq: row.LastSeq, admitted: row.QueueState == store.QueueAdmitted})
	}
}

// adoptionFailed reports a task whose record cannot be read or written (the status writer
// shows it), and returns the error so that the reconcile is retried with backoff.
func (r *reconciler) adoptionFailed(ctx context.Context, bt *v1alpha1.BackgroundTask, err error) error {
	nn := types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name}
	if errors.Is(err, store.ErrAlreadyExists) {
		// The row was soft-deleted while its object still exists: nothing more is recorded.
		logf.FromContext(ctx).Error(err, "the task's record was closed (soft-deleted); it is not run again")
		return nil
	}
	r.tasks.setProblem(nn, string(bt.UID), err.Error())
	r.report(nn)
	return fmt.Errorf("load the record of %s: %w", nn, err)
}

// ownedElsewhere notes that another live process owns the task: it is not run here, this is
// told once, and it is looked at again when its owner could be gone (when its Lease would
// expire without another renewal).
func (r *reconciler) ownedElsewhere(ctx context.Context, bt *v1alpha1.BackgroundTask, owner store.Owner, why string, recheck time.Duration) ctrl.Result {
	recheck = r.recheckAfter(recheck)
	if r.tasks.setForeign(types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name}, string(bt.UID), owner, r.clock.Now().Add(recheck)) {
		me := r.member.Owner()
		logf.FromContext(ctx).Info("another operator owns this task; not running it here", "owner", owner.Name,
			"ownerEpoch", owner.Epoch, "why", why)
		r.events.Eventf(bt, nil, corev1.EventTypeWarning, "OwnedElsewhere", "Adopt",
			"operator %s (epoch %d) owns this task: %s; operator %s (epoch %d) does not run it", owner.Name, owner.Epoch, why, me.Name, me.Epoch)
	}
	return ctrl.Result{RequeueAfter: recheck}
}

// recheckAfter bounds when a task owned by another live process is looked at again: not in a
// busy loop, and never later than both of its records could take to expire.
func (r *reconciler) recheckAfter(hint time.Duration) time.Duration {
	return min(max(hint, kit.SettleDelay), 2*r.opts.LeaseDuration)
}
