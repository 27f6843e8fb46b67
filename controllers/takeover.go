package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/store"
)

// takeOver claims, in one statement, every task this replica may run that gone (an owner the
// membership found gone) still holds, and tracks them: a takeover of a thousand tasks is one
// round trip instead of a thousand claims one reconcile at a time. The tasks may run here: their
// type is served here and, with sharding, they are assigned here. It returns how many it took.
func (r *reconciler) takeOver(ctx context.Context, gone store.Owner) (int, error) {
	r.takeovers.Lock()
	defer r.takeovers.Unlock()
	var list v1alpha1.BackgroundTaskList
	if err := r.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("list the tasks to take over from %s (epoch %d): %w", gone.Name, gone.Epoch, err)
	}
	names := map[string]types.NamespacedName{}
	uids := make([]string, 0, len(list.Items))
	for i := range list.Items {
		bt := &list.Items[i]
		uid := string(bt.UID)
		if !bt.DeletionTimestamp.IsZero() || !r.opts.Registry.Has(bt.Spec.TaskName) || (r.opts.Sharding && !r.assignedHere(bt)) {
			continue
		}
		if _, tracked := r.journal.View(uid); tracked {
			continue
		}
		names[uid] = types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name}
		uids = append(uids, uid)
	}
	dbctx, cancel := context.WithTimeout(ctx, r.opts.DatabaseTimeout)
	defer cancel()
	rows, err := r.store.ClaimFrom(dbctx, gone.Epoch, r.member.Owner(), uids)
	if err != nil {
		return 0, err
	}
	for i := range rows {
		nn := names[rows[i].UID]
		r.tasks.track(nn, rows[i].UID)
		r.seedPlace(&rows[i])
		r.journal.Track(nn, &rows[i])
		r.report(nn)
		r.decideWake.Notify(nn)
	}
	if len(rows) > 0 {
		logf.FromContext(ctx).Info("took over the tasks of an owner that is gone", "owner", gone.Name, "ownerEpoch", gone.Epoch,
			"tasks", len(rows))
	}
	return len(rows), nil
}

// leaseWatch follows this deployment's membership Leases (the manager's cache watches them):
// every change it sees is told to the membership, so that expiry is judged from the last
// renewal seen rather than from the first time anyone asks (a standby that asked only after the
// owner died waited a second lease duration), and an owner whose Lease expires or is released
// is looked at right then: its tasks are taken over by whichever replica may run them (the
// claim is a compare-and-swap), without waiting for leadership or a sweep.
type leaseWatch struct {
	r        *reconciler
	clock    clock.WithTicker
	interval time.Duration
	log      logr.Logger

	mu  sync.Mutex
	due map[string]time.Time // owner identity -> when to look at it
}

// handlers are the informer callbacks.
func (w *leaseWatch) handlers() toolscache.ResourceEventHandler {
	seen := func(obj any) {
		l, ok := obj.(*coordinationv1.Lease)
		if !ok {
			return
		}
		w.r.member.Observe(l)
		holder := ptr.Deref(l.Spec.HolderIdentity, "")
		if holder == "" || holder == w.r.opts.Identity {
			return // released: the owners of this Lease's name are looked at by the recheck below
		}
		w.lookAt(holder, w.clock.Now().Add(w.r.member.Observer().Left(l)))
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(old, cur any) { w.released(old, cur); seen(cur) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if l, ok := obj.(*coordinationv1.Lease); ok {
				w.r.member.ObserveMissing(l.Namespace, l.Name)
			}
		},
	}
}

// released looks at once at the owner of a Lease that was just released (a clean shutdown).
func (w *leaseWatch) released(old, cur any) {
	before, ok1 := old.(*coordinationv1.Lease)
	after, ok2 := cur.(*coordinationv1.Lease)
	if !ok1 || !ok2 {
		return
	}
	if holder := ptr.Deref(before.Spec.HolderIdentity, ""); holder != "" && ptr.Deref(after.Spec.HolderIdentity, "") == "" &&
		holder != w.r.opts.Identity {
		w.lookAt(holder, w.clock.Now())
	}
}

// lookAt (re)schedules a look at the owners of identity.
func (w *leaseWatch) lookAt(identity string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.due == nil {
		w.due = map[string]time.Time{}
	}
	w.due[identity] = at
}

// Start looks at the owners whose time came, until ctx ends (manager.Runnable).
func (w *leaseWatch) Start(ctx context.Context) error {
	ticker := w.clock.NewTicker(w.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
		select {
		case <-w.r.ready:
		default:
			continue // not a task owner yet
		}
		now := w.clock.Now()
		var due []string
		w.mu.Lock()
		for identity, at := range w.due {
			if !now.Before(at) {
				due = append(due, identity)
				delete(w.due, identity)
			}
		}
		w.mu.Unlock()
		for _, identity := range due {
			w.takeOverFrom(ctx, identity)
		}
	}
}

// takeOverFrom takes over the tasks of identity's owners that are gone, and looks again at
// those that are not yet (the other backend keeps them) when they could be.
func (w *leaseWatch) takeOverFrom(ctx context.Context, identity string) {
	ctx = logf.IntoContext(ctx, w.log)
	dbctx, cancel := context.WithTimeout(ctx, w.r.opts.DatabaseTimeout)
	owners, err := w.r.store.OwnersOf(dbctx, identity)
	cancel()
	if err != nil {
		w.log.V(1).Info("cannot list the owners of a lapsed Lease; looking again", "identity", identity, "error", err.Error())
		w.lookAt(identity, w.clock.Now().Add(w.r.opts.RetryPeriod))
		return
	}
	for _, owner := range owners {
		if owner == w.r.member.Owner() {
			continue
		}
		verdict, err := w.r.member.Gone(ctx, owner)
		switch {
		case err != nil:
			w.lookAt(identity, w.clock.Now().Add(w.r.opts.RetryPeriod))
		case !verdict.Gone:
			w.lookAt(identity, w.clock.Now().Add(max(verdict.RecheckAfter, kit.SettleDelay)))
		default:
			if _, err := w.r.takeOver(ctx, owner); err != nil {
				w.log.Info("cannot take over the tasks of an owner that is gone; looking again", "owner", owner.Name,
					"ownerEpoch", owner.Epoch, "error", err.Error())
				w.lookAt(identity, w.clock.Now().Add(w.r.opts.RetryPeriod))
			}
		}
	}
}

// NeedLeaderElection: every replica watches (manager.LeaderElectionRunnable).
func (w *leaseWatch) NeedLeaderElection() bool { return false }

// addLeaseWatch registers the watch on the manager's Lease informer and runs it.
func addLeaseWatch(mgr ctrl.Manager, w *leaseWatch) error {
	informer, err := mgr.GetCache().GetInformer(context.Background(), &coordinationv1.Lease{})
	if err != nil {
		return fmt.Errorf("watch the membership Leases: %w", err)
	}
	if _, err := informer.AddEventHandler(w.handlers()); err != nil {
		return fmt.Errorf("watch the membership Leases: %w", err)
	}
	if err := mgr.Add(w); err != nil {
		return fmt.Errorf("add the membership Lease watch: %w", err)
	}
	return nil
}
