package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/sharding"
	"github.com/taskpilot/taskpilot/runner"
)

// releaseRecheck is how often a handover looks again while its release is being written.
const releaseRecheck = 2 * time.Second

// assignmentChanged passes updates that change a task's assignment labels (sharding): a drain
// request does not change the spec, so the generation predicate alone would miss it.
func assignmentChanged() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc:  kit.AssignmentMoved,
	}
}

// assignedHere reports whether the sharder wants this process to run the task: labelled with
// its identity and not being drained.
func (r *reconciler) assignedHere(bt *v1alpha1.BackgroundTask) bool {
	a := sharding.LabelsOf(bt.Labels)
	return a.Shard == r.opts.Identity && !a.Draining
}

// movedAway reports whether a task this process tracks left its cache because it was assigned
// elsewhere, not deleted: with sharding the cache holds only this replica's tasks, so a
// relabelled object looks deleted here. The API server tells which.
func (r *reconciler) movedAway(ctx context.Context, nn types.NamespacedName, uid string) (bool, error) {
	if !r.opts.Sharding || uid == "" {
		return false, nil
	}
	var bt v1alpha1.BackgroundTask
	switch err := r.apiReader.Get(ctx, nn, &bt); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("is %s deleted or moved: %w", nn, err)
	}
	return string(bt.UID) == uid && bt.DeletionTimestamp.IsZero(), nil
}

// handOver gives a task to the replica the sharder assigned it to, in the order that keeps it
// from running twice: stop the run here without recording anything (runner.HandOver, waiting
// as long as the task takes to return), write everything queued for it (its last checkpoint
// included), release the row so the next owner claims it at once, forget it, and remove the
// assignment labels so the sharder assigns it anew. bt is nil when the object already left
// this replica's cache (assigned elsewhere directly).
//
// A hand-over that started completes, release included, whatever the labels say later (a drain
// the sharder calls off meanwhile): a run stopped here without a record must be claimed again
// from the row, never left as a runner entry without a goroutine or a released row still
// tracked. The task is then adopted afresh (claimed from nobody) if it is to run here.
func (r *reconciler) handOver(ctx context.Context, nn types.NamespacedName, uid string, bt *v1alpha1.BackgroundTask) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	if _, inRunner := r.runner.Snapshot(runner.Key(uid)); inRunner {
		r.tasks.setHandingOver(uid, true)
	}
	done, err := r.runner.HandOver(runner.Key(uid))
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("hand over the run of %s: %w", nn, err)
	}
	if !done {
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil // stopping at its next pause point
	}
	view, tracked := r.journal.View(uid)
	if tracked && view.Ownership.Writes() {
		r.journal.Release(uid)
		// The journal wakes us once it is written; the requeue only covers a release the
		// database refused for good, which is then asked for again.
		return ctrl.Result{RequeueAfter: releaseRecheck}, nil
	}
	if tracked {
		log.Info("handed the task over", "ownership", view.Ownership, "status", view.Record.Status, "attempt", view.Record.Attempt)
		r.journal.Forget(uid)
	}
	// Whatever this process knew of the task (tracked, owned elsewhere, a problem), it is not
	// its own any more; with sharding the object leaves this replica's cache, so no deletion
	// would ever come to forget it.
	r.tasks.forget(nn, uid)
	labels := sharding.LabelsOf(nil)
	if bt != nil {
		labels = sharding.LabelsOf(bt.Labels)
	}
	switch {
	case bt == nil || labels.Shard != r.opts.Identity || !r.member.Valid():
		return ctrl.Result{}, nil
	case !labels.Draining:
		// The drain was called off while the run was handed over: adopt the task again.
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil
	}
	// Drained: remove the labels, so the sharder assigns the task to its new replica. Only the
	// labels this look read: a copy of the object older than the sharder's next assignment (a
	// second look from a lagging cache) must not remove that assignment, or the task's new
	// replica would see it move away and hand it over again.
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": bt.UID, "resourceVersion": bt.ResourceVersion,
		"labels": map[string]any{sharding.LabelShard: nil, sharding.LabelDrain: nil}}})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("encode labels: %w", err)
	}
	err = r.client.Patch(ctx, bt, client.RawPatch(types.MergePatchType, body))
	switch {
	case apierrors.IsConflict(err):
		return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil // look again at the newer object, if it is still here
	case err != nil:
		return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("drained %s: remove its assignment: %w", nn, err))
	}
	return ctrl.Result{}, nil
}
