package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/journal"
)

// ttlDue reports whether a terminal task's time to live is over (expired) or how long it has
// left (wait > 0). Only a task whose final transition is committed counts, and not one about to
// move on by itself (a retry, a restart): its history must be safe in PostgreSQL first.
func ttlDue(bt *v1alpha1.BackgroundTask, c journal.Committed, now time.Time) (expired bool, wait time.Duration) {
	rec := c.Record
	ttl, ok := ttlFor(bt.Spec, rec.Status)
	if !ok || !rec.Status.Terminal() || c.Backlog > 0 || passing(bt.Spec, rec) || rec.EndTime.IsZero() {
		return false, 0
	}
	due := rec.EndTime.Add(ttl)
	if now.Before(due) {
		return false, due.Sub(now)
	}
	return true, 0
}

// ttlFor is the time to live of a task in terminal status s, if any.
func ttlFor(spec v1alpha1.BackgroundTaskSpec, s lifecycle.Status) (time.Duration, bool) {
	seconds := spec.TTLSecondsAfterFinished
	if o := spec.TTLSecondsAfterOutcome; o != nil {
		switch s {
		case lifecycle.Finished:
			seconds = orSeconds(o.Finished, seconds)
		case lifecycle.Failed:
			seconds = orSeconds(o.Failed, seconds)
		case lifecycle.Stopped:
			seconds = orSeconds(o.Stopped, seconds)
		case lifecycle.Pending, lifecycle.Running, lifecycle.Paused:
		}
	}
	if seconds == nil {
		return 0, false
	}
	return time.Duration(*seconds) * time.Second, true
}

func orSeconds(v, fallback *int32) *int32 {
	if v != nil {
		return v
	}
	return fallback
}

// expire deletes a task whose time to live is over; its run is long over and its history stays
// in PostgreSQL (the deletion soft-deletes the row). The decision was made on the cached object:
// the preconditions make the API server delete exactly that version, so neither a newer object
// of the same name nor a restart or TTL change the cache has not seen yet is deleted. On such a
// conflict it looks again once the cache has caught up.
func (s *statusWriter) expire(ctx context.Context, bt *v1alpha1.BackgroundTask) (ctrl.Result, error) {
	logf.FromContext(ctx).Info("deleting a task whose time to live after it finished is over", "phase", bt.Status.Phase)
	err := s.client.Delete(ctx, bt, client.Preconditions{UID: &bt.UID, ResourceVersion: &bt.ResourceVersion})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	case apierrors.IsConflict(err):
		return ctrl.Result{RequeueAfter: ttlRecheck}, nil
	default:
		return ctrl.Result{}, fmt.Errorf("delete expired task: %w", err)
	}
}

// ttlRecheck is how long a deletion refused by its preconditions waits for the cache to show
// what changed.
const ttlRecheck = time.Second
