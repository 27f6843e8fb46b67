package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
)

// finalize handles a deleted BackgroundTask: stop the run (its Post hook runs, bounded by the
// runner's stop grace), write the remaining transitions and the soft delete of the row (history
// is kept), then release the object. If that cannot finish within FinalizerTimeout (the
// database is down), the finalizer is removed anyway with a Warning event saying what is
// missing, so a deletion is never stuck forever.
func (r *BackgroundTaskReconciler) finalize(ctx context.Context, bt *v1alpha1.BackgroundTask) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(bt, Finalizer) {
		return ctrl.Result{}, nil
	}
	log := logf.FromContext(ctx)
	uid, key := string(bt.UID), runner.Key(bt.UID)
	now := r.opts.Clock.Now()
	deadline := bt.DeletionTimestamp.Add(r.opts.FinalizerTimeout)
	overdue := now.After(deadline)

	if snap, ok := r.opts.Runner.Snapshot(key); ok && !snap.State.Terminal() && !overdue {
		if err := ignoreSettled(r.opts.Runner.StopTask(key)); err != nil {
			return ctrl.Result{}, fmt.Errorf("stop deleted task: %w", err)
		}
		return ctrl.Result{RequeueAfter: settleDelay}, nil // the Stopped transition wakes us sooner
	}

	problem := ""
	if _, tracked := r.opts.Journal.Get(uid); tracked {
		if err := r.opts.Journal.MarkDeleted(uid); err != nil {
			return ctrl.Result{}, err
		}
		if st, _ := r.opts.Journal.Get(uid); !st.Deleted {
			if !overdue {
				return ctrl.Result{RequeueAfter: min(time.Second, deadline.Sub(now))}, nil
			}
			problem = fmt.Sprintf("%d transition(s) could not be written to PostgreSQL: %s", st.Backlog, nonEmpty(st.WriteError, "still writing"))
		}
	} else {
		dbctx, cancel := context.WithTimeout(ctx, r.opts.DatabaseTimeout)
		err := r.opts.Store.MarkDeleted(dbctx, uid)
		cancel()
		if err != nil {
			if !overdue {
				return ctrl.Result{}, fmt.Errorf("mark row deleted: %w", err)
			}
			problem = "the row could not be marked deleted in PostgreSQL: " + err.Error()
		}
	}
	if problem != "" {
		log.Info("releasing a deleted task with an incomplete record", "problem", problem)
		r.opts.Events.Eventf(bt, nil, corev1.EventTypeWarning, "RecordIncomplete", "Delete",
			"finalizer timeout (%s) reached: %s", r.opts.FinalizerTimeout, problem)
	}
	r.opts.Journal.Forget(uid)
	if err := r.opts.Runner.Forget(key); err != nil && !errors.Is(err, runner.ErrNotFound) {
		log.Info("deleted task still has a run in the runner", "error", err.Error())
	}
	controllerutil.RemoveFinalizer(bt, Finalizer)
	if err := r.opts.Client.Update(ctx, bt); err != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}
