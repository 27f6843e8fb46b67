package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/runner"
)

// act carries out a decision. Runner calls and journal records only touch memory and return
// at once.
func (r *reconciler) act(ctx context.Context, bt *v1alpha1.BackgroundTask, view journal.View, d decision) error {
	uid, key := string(bt.UID), runner.Key(bt.UID)
	switch d.Action {
	case actStart, actPause, actResume:
		// Each would produce transitions to record: past the journal's bound (PostgreSQL down)
		// they wait, and the status says why; what runs goes on.
		if msg := r.journal.Deferring(); msg != "" {
			if r.tasks.setDeferred(uid, msg) {
				r.report(types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name})
			}
			return errDeferred
		}
		if r.tasks.setDeferred(uid, "") {
			r.report(types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name})
		}
	case actNone, actStop, actRecord:
	}
	switch d.Action {
	case actNone:
	case actStart:
		spec, err := r.startSpec(ctx, bt, d.Attempt, d.RestartGeneration)
		if err == nil {
			if d.Resume {
				spec.Checkpoint = view.Checkpoint
			}
			spec.Previous = engine.ParseTraceParent(view.LastSpan)
			r.journal.Hand(uid, d.Attempt, d.RestartGeneration)
			err = r.runner.StartTask(key, spec)
		}
		return r.startFailed(bt, d, err)
	case actPause:
		return ignoreSettled(r.runner.PauseTask(key))
	case actResume:
		return ignoreSettled(r.runner.ResumeTask(key))
	case actStop:
		if d.StopReason != "" {
			return ignoreSettled(r.runner.StopTaskBecause(key, d.StopReason, d.StopMessage))
		}
		return ignoreSettled(r.runner.StopTask(key))
	case actRecord:
		err := r.journal.Record(uid, *d.Event)
		if errors.Is(err, journal.ErrBacklogFull) {
			return nil // the journal wakes us once the backlog drains
		}
		return err
	}
	return nil
}

// startFailed turns a start error into the task's outcome: a spec that can never run fails for
// good (terminal error, no requeue); a process that is losing its tasks does nothing; anything
// else is retried by the queue.
func (r *reconciler) startFailed(bt *v1alpha1.BackgroundTask, d decision, err error) error {
	uid := string(bt.UID)
	var reason string
	switch {
	case err == nil, errors.Is(err, engine.ErrAlreadyActive), errors.Is(err, runner.ErrLeaseLost), errors.Is(err, runner.ErrShutdown):
		return nil
	case errors.Is(err, engine.ErrStillRunning):
		// The previous run ignored its cancellation and still executes: the runner wakes us
		// when it returned (Options.Returned), and the status says why the task waits.
		r.journal.Hand(uid, 0, 0)
		r.report(types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name})
		return nil
	case errors.Is(err, runner.ErrUnknownTaskType):
		reason = lifecycle.ReasonUnknownTaskType
	case errors.Is(err, runner.ErrInvalidParams):
		reason = lifecycle.ReasonInvalidParams
	default:
		return fmt.Errorf("start attempt %d: %w", d.Attempt, err)
	}
	r.journal.Hand(uid, 0, 0)
	rerr := r.journal.Record(uid, lifecycle.Event{To: lifecycle.Failed, Attempt: d.Attempt, Reason: reason,
		Message: err.Error(), RestartGeneration: d.RestartGeneration})
	if rerr != nil && !errors.Is(rerr, journal.ErrBacklogFull) {
		return rerr
	}
	return reconcile.TerminalError(err)
}

// startSpec builds the runner's spec for attempt of restart generation gen; oversized params
// are InvalidParams. Params and items the cache left out are read from the API server.
func (r *reconciler) startSpec(ctx context.Context, bt *v1alpha1.BackgroundTask, attempt int, gen int64) (engine.StartSpec, error) {
	_, paramsLeftOut := bt.Annotations[annotationParamsLeftOut]
	if _, itemsLeftOut := bt.Annotations[annotationItemsLeftOut]; paramsLeftOut || itemsLeftOut {
		var full v1alpha1.BackgroundTask
		if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(bt), &full); err != nil {
			return engine.StartSpec{}, fmt.Errorf("read the spec of %s/%s (the cache left its params or items out): %w", bt.Namespace, bt.Name, err)
		}
		if full.UID != bt.UID {
			return engine.StartSpec{}, fmt.Errorf("read the spec of %s/%s: the object was replaced", bt.Namespace, bt.Name)
		}
		bt = &full
	}
	spec := engine.StartSpec{TaskName: bt.Spec.TaskName, Attempt: attempt, Namespace: bt.Namespace, Name: bt.Name,
		Labels: bt.Labels, Annotations: bt.Annotations, Parent: engine.ParseTraceParent(bt.Annotations[v1alpha1.AnnotationTraceParent])}
	if bt.Spec.Params != nil && len(bt.Spec.Params.Raw) > 0 {
		if n := len(bt.Spec.Params.Raw); n > v1alpha1.MaxParamsBytes {
			return spec, fmt.Errorf("spec.params is %d bytes, more than the %d allowed: %w", n, v1alpha1.MaxParamsBytes, runner.ErrInvalidParams)
		}
		spec.Params = json.RawMessage(bt.Spec.Params.Raw)
	}
	if bt.Spec.Timeout != nil {
		spec.Timeout = bt.Spec.Timeout.Duration
	}
	if info, ok := r.opts.Registry.Info(bt.Spec.TaskName); ok && info.Items != (bt.Spec.Items != nil) {
		if info.Items {
			return spec, fmt.Errorf("task type %q runs items: set spec.items: %w", bt.Spec.TaskName, runner.ErrInvalidParams)
		}
		return spec, fmt.Errorf("task type %q does not run items: remove spec.items: %w", bt.Spec.TaskName, runner.ErrInvalidParams)
	}
	if items := bt.Spec.Items; items != nil {
		spec.Items = &itemSource{rows: r.store, uid: string(bt.UID), owner: r.member.Owner, attempt: attempt,
			plan: itemPlan(items, gen), parallelism: int(max(1, items.Parallelism))}
	}
	return spec, nil
}

// ignoreSettled treats "already there" answers of the runner as success: the decision was made
// from a view the run has since moved past, and its transition is on the way.
func ignoreSettled(err error) error {
	if errors.Is(err, engine.ErrTerminal) || errors.Is(err, engine.ErrNotFound) || errors.Is(err, runner.ErrLeaseLost) {
		return nil
	}
	return err
}

// errDeferred is act's answer for an action that waits for the journal's backlog to shrink:
// the reconcile looks again after deferRecheck.
var errDeferred = errors.New("deferred until PostgreSQL catches up")

// deferRecheck is how often a deferred action is tried again.
const deferRecheck = time.Second
