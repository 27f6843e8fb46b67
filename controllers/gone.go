package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/runner"
)

// gone handles a task whose object was deleted (or replaced by a new object of the same
// name): stop its run, then soft-delete its row once the run's last transition is queued
// (history kept), then forget it. done is true once nothing of the task is left here.
func (r *reconciler) gone(ctx context.Context, nn types.NamespacedName, uid string) (ctrl.Result, bool, error) {
	if uid == "" {
		return ctrl.Result{}, true, nil
	}
	key := runner.Key(uid)
	if snap, ok := r.runner.Snapshot(key); ok && !snap.Status.Terminal() {
		if err := ignoreSettled(r.runner.StopTask(key)); err != nil {
			return ctrl.Result{}, false, fmt.Errorf("stop the run of deleted %s: %w", nn, err)
		}
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, false, nil // its Stopped transition wakes us sooner
	}
	view, tracked := r.journal.View(uid)
	if tracked && view.Ownership.Writes() && !view.DeleteRefused {
		logf.FromContext(ctx).V(1).Info("object deleted: soft-deleting the row after its last transitions", "uid", uid)
		r.journal.Delete(uid) // the journal wakes us when it is written, or refused for good
		return ctrl.Result{}, false, nil
	}
	if view.DeleteRefused {
		logf.FromContext(ctx).Info("PostgreSQL refused to close the row of the deleted task; the sweep tries again", "uid", uid)
	}
	r.journal.Forget(uid)
	_ = r.runner.Forget(key)
	r.tasks.forget(nn, uid)
	return ctrl.Result{}, true, nil
}

// release lets go of a task this process can no longer record: another process owns it
// (fenced), its row changed under this one's feet (stale: re-adopt it), or its row was
// soft-deleted. The local run is stopped first; nothing of it is recorded.
func (r *reconciler) release(ctx context.Context, bt *v1alpha1.BackgroundTask, view journal.View) (ctrl.Result, error) {
	uid, key := string(bt.UID), runner.Key(bt.UID)
	if snap, ok := r.runner.Snapshot(key); ok && !snap.Status.Terminal() {
		if err := ignoreSettled(r.runner.StopTask(key)); err != nil {
			return ctrl.Result{}, fmt.Errorf("stop the local run: %w", err)
		}
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil
	}
	r.journal.Forget(uid)
	_ = r.runner.Forget(key)
	nn := types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name}
	r.tasks.forget(nn, uid)
	switch view.Ownership {
	case journal.Fenced:
		me := r.member.Owner()
		r.tasks.setForeign(nn, uid, view.FencedBy, r.clock.Now().Add(r.opts.LeaseDuration))
		r.events.Eventf(bt, nil, corev1.EventTypeWarning, "OwnershipLost", "Fence",
			"operator %s (epoch %d) owns this task now; operator %s (epoch %d) stopped its copy of the run and recorded nothing more",
			view.FencedBy.Name, view.FencedBy.Epoch, me.Name, me.Epoch)
		return ctrl.Result{RequeueAfter: r.opts.LeaseDuration}, nil
	case journal.Stale:
		// Adopt it again from the row, leader or not: this process owned it, and reloading a
		// row it still owns claims nothing (the sweep would otherwise take up to a minute).
		r.tasks.setReadopt(nn, uid)
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil
	case journal.Owned, journal.Released, journal.Deleted:
	}
	logf.FromContext(ctx).Info("the task's row was soft-deleted while its object exists; it is not run again")
	return ctrl.Result{}, nil
}
