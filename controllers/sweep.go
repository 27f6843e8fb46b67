package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/internal/sharding"
	"github.com/taskpilot/taskpilot/store"
)

// sweeper compares the rows with the live BackgroundTasks, once when this process becomes a
// task owner (how the tasks that were Running or Paused when their owner stopped are loaded
// again) and then periodically:
//   - an active row whose owner is gone (or that has none) and whose object exists is handed
//     to the reconciler, which adopts it and resumes it from its checkpoint;
//   - a row whose object is gone is soft-deleted (history kept): by the reconciler when this
//     process runs the task (it stops the run first), directly when the owner is gone;
//
// so a task deleted while no operator ran, or whose deletion this process missed (the object
// had no finalizer to wait for), never keeps running or stays RUNNING in the record.
type sweeper struct {
	client    client.Client
	apiReader client.Reader
	store     *store.Repository
	journal   *journal.Journal
	member    *membership.Member
	decide    func(types.NamespacedName)
	timeout   time.Duration
	retention time.Duration // 0: keep history forever
	purged    prometheus.Counter
	// sharding: the cache holds only this replica's tasks, so the live objects are listed from
	// the API server (metadata only), and only tasks assigned here are adopted.
	sharding bool
	// leading: without sharding, only the leader adopts the rows of gone owners.
	leading func() bool
	log     logr.Logger
}

// loop sweeps at once and then every interval; a pass that fails (the database or the API
// server does not answer) is tried again after 1 s, 2 s, 4 s ... up to the interval.
func (s *sweeper) loop(ctx context.Context, interval time.Duration) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		retry := wait.Backoff{Duration: time.Second, Factor: 2, Cap: interval, Steps: math.MaxInt32}
		_ = wait.ExponentialBackoffWithContext(ctx, retry, func(ctx context.Context) (bool, error) {
			if err := s.pass(ctx); err != nil {
				if ctx.Err() == nil {
					s.log.Info("sweep failed; retrying", "error", err.Error())
				}
				return false, nil
			}
			return true, nil
		})
	}, interval)
}

// pass sweeps once.
func (s *sweeper) pass(ctx context.Context) error {
	dbctx, cancel := context.WithTimeout(ctx, 6*s.timeout)
	rows, err := s.store.ListLive(dbctx)
	cancel()
	if err != nil {
		return err
	}
	objects, err := s.liveObjects(ctx)
	if err != nil {
		return err
	}
	me := s.member.Owner()
	var adopt, deleted int
	var refused []error
	for i := range rows {
		row := &rows[i]
		nn := types.NamespacedName{Namespace: row.Namespace, Name: row.Name}
		shard, exists := objects[row.UID]
		if !exists {
			// Listed before the row was written, or gone: the API server says which.
			if exists, err = s.objectExists(ctx, nn, row.UID); err != nil {
				return err
			}
		}
		here := (s.sharding && shard == me.Name) || (!s.sharding && s.leading())
		owner, owned := row.Owned()
		mine := owned && owner.Epoch == me.Epoch
		_, tracked := s.journal.View(row.UID)
		switch {
		case mine && !tracked && exists && !here:
			// Ours on paper but assigned elsewhere and not run here: give it up, so its new
			// replica need not wait for this one to be gone.
			if err := s.release(ctx, row.UID, me); err != nil {
				return err
			}
		case mine && (tracked || exists):
			if !tracked {
				s.decide(nn) // ours but not tracked (e.g. released): let the reconciler adopt or clean up
			} else if !exists {
				s.decide(nn) // the reconciler stops the run and soft-deletes the row
			}
		case exists && row.Status != lifecycle.Finished && row.Status != lifecycle.Failed && row.Status != lifecycle.Stopped:
			if here && s.ownerGone(ctx, row) {
				s.decide(nn)
				adopt++
			}
		case !exists && (mine || s.ownerGone(ctx, row)):
			dbctx, cancel := context.WithTimeout(ctx, s.timeout)
			err := s.store.MarkDeleted(dbctx, row.UID)
			cancel()
			if err != nil {
				// One row refused for good must not keep the pass from the others (adoptions
				// included): go on, and fail the pass at the end so it is retried.
				refused = append(refused, err)
				continue
			}
			deleted++
		}
	}
	if adopt > 0 || deleted > 0 {
		s.log.Info("swept the record", "rows", len(rows), "adopting", adopt, "softDeleted", deleted)
	}
	return errors.Join(append(refused, s.purge(ctx))...)
}

// purgeBatch is how many tasks one purge transaction deletes: small, so it never holds many
// locks or a long transaction.
const purgeBatch = 100

// purge deletes the rows and history of tasks soft-deleted longer than the retention ago.
func (s *sweeper) purge(ctx context.Context) error {
	if s.retention <= 0 {
		return nil
	}
	before := time.Now().Add(-s.retention)
	var total int64
	for {
		dbctx, cancel := context.WithTimeout(ctx, s.timeout)
		p, err := s.store.PurgeHistory(dbctx, before, purgeBatch)
		cancel()
		if err != nil {
			return err
		}
		total += p.Tasks
		s.purged.Add(float64(p.Tasks))
		if p.Tasks < purgeBatch {
			break
		}
	}
	if total > 0 {
		s.log.Info("purged old history", "tasks", total, "deletedBefore", before)
	}
	return nil
}

// liveObjects maps the UID of every BackgroundTask to the replica it is assigned to (the shard
// label; "" without sharding): from the cache, which holds every task when tasks are not
// sharded, or else from one paginated metadata list.
func (s *sweeper) liveObjects(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	if !s.sharding {
		var list v1alpha1.BackgroundTaskList
		if err := s.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		for i := range list.Items {
			out[string(list.Items[i].UID)] = ""
		}
		return out, nil
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(v1alpha1.GroupVersion().WithKind("BackgroundTaskList"))
	for {
		if err := s.apiReader.List(ctx, list, client.Limit(500), client.Continue(list.Continue)); err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		for i := range list.Items {
			out[string(list.Items[i].UID)] = sharding.LabelsOf(list.Items[i].Labels).Shard
		}
		if list.Continue == "" {
			return out, nil
		}
	}
}

// release gives up a row this process owns but does not run.
func (s *sweeper) release(ctx context.Context, uid string, me store.Owner) error {
	dbctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.store.Release(dbctx, uid, me); err != nil && !errors.Is(err, store.ErrFenced) && !errors.Is(err, store.ErrDeleted) {
		return err
	}
	return nil
}

// objectExists reports whether the BackgroundTask with this uid exists, from the cache and,
// when the cache does not have it (it may lag), from the API server.
func (s *sweeper) objectExists(ctx context.Context, nn types.NamespacedName, uid string) (bool, error) {
	var bt v1alpha1.BackgroundTask
	err := s.client.Get(ctx, nn, &bt)
	if err == nil && string(bt.UID) == uid {
		return true, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	err = s.apiReader.Get(ctx, nn, &bt)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return string(bt.UID) == uid, nil
}

// ownerGone reports whether the row has no owner or its owner is gone.
func (s *sweeper) ownerGone(ctx context.Context, row *store.Task) bool {
	owner, owned := row.Owned()
	if !owned {
		return true
	}
	verdict, err := s.member.Gone(ctx, owner)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.V(1).Info("cannot tell whether an owner is gone", "owner", owner.Name, "error", err.Error())
	}
	return verdict.Gone
}
