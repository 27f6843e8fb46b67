package sharder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/internal/sharding"
)

// membershipPoll is how often the sharder reads the membership Leases. A Lease that expires
// sends no event, so a crashed replica is noticed by looking: at most this long after its
// Lease expired.
const membershipPoll = 500 * time.Millisecond

// Sharder spreads the tasks over the live replicas (--sharding): it reads the membership
// Leases and rows, hashes every task's UID onto the ring of live replicas, and writes the
// assignment as the task's labels (package sharding). A replica is live while either of its
// records is, as for claims (membership.Gone): through an API server outage nobody can renew
// a Lease, and a sharder that judged by the Leases alone would, once the API server is back,
// see the other replicas' Leases unchanged for minutes and move all their tasks (each stopped
// and resumed from its checkpoint) before they renew. It runs on every replica and acts on the elected leader
// only (a replica that stops leading keeps its cache warm and its Lease observations current,
// and forgets its ring), and needs nothing but metadata, so its cache of every BackgroundTask
// is metadata-only; each replica's own cache holds just the tasks labelled for it.
type Sharder struct {
	client client.Client // writes the labels (metadata merge patches)
	tasks  cache.Cache   // metadata of every BackgroundTask
	leases client.Reader // the manager's cache of membership Leases
	// liveRows lists the deployment's replicas whose membership row is live (PostgreSQL).
	liveRows  func(ctx context.Context, deployment string) ([]string, error)
	namespace string
	// deployment is this operator deployment: its members form the ring; serves says which
	// task types it runs (the others belong to other deployments' sharders).
	deployment string
	serves     func(taskName string) bool
	workers    int
	// observer judges the membership Leases' expiry by when this process saw them renewed: the
	// membership's, so the sharder and the claims agree on who is live.
	observer *membership.Observer
	leading  func() bool
	resync   *kit.Wake
	view     atomic.Pointer[ringView]
	moves    *prometheus.CounterVec
	replicas prometheus.Gauge
	log      logr.Logger
}

// ringView is the ring of the live replicas, rebuilt when they change.
type ringView struct {
	ring *sharding.Ring
	live map[string]bool
}

func (v *ringView) isLive(m string) bool { return v.live[m] }

// Options configure a Sharder.
type Options struct {
	Namespace string
	// Namespaces limits the tasks it assigns (all namespaces when empty).
	Namespaces []string
	// Deployment is this operator deployment: its members form the ring.
	Deployment string
	// Serves says which task types this deployment runs.
	Serves func(taskName string) bool
	// LiveRows lists the deployment's replicas whose membership row is live (PostgreSQL).
	LiveRows func(ctx context.Context, deployment string) ([]string, error)
	// Observer judges the membership Leases (the membership's own, so both agree).
	Observer *membership.Observer
	Leading  func() bool
	// Workers is how many tasks are assigned in parallel.
	Workers int
	Metrics prometheus.Registerer
	Log     logr.Logger
}

// New returns the sharder with its own metadata-only cache of every BackgroundTask;
// SetupWithManager adds it.
func New(mgr ctrl.Manager, o Options) (*Sharder, error) {
	copts := cache.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), DefaultTransform: withoutPayload()}
	if len(o.Namespaces) > 0 {
		copts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			copts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	tasks, err := cache.New(mgr.GetConfig(), copts)
	if err != nil {
		return nil, fmt.Errorf("sharder cache: %w", err)
	}
	s := &Sharder{
		client: mgr.GetClient(), tasks: tasks, leases: mgr.GetClient(), liveRows: o.LiveRows, namespace: o.Namespace,
		observer: o.Observer, leading: o.Leading, deployment: o.Deployment, serves: o.Serves, workers: o.Workers,
		resync: kit.NewWake(), log: o.Log,
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskpilot_sharder_label_writes_total",
			Help: "Assignment label writes by the sharder, by kind: assign (a new or drained task), drain (ask a live replica to hand a task over), move (from a gone replica), keep (a drain called off).",
		}, []string{"kind"}),
	}
	s.replicas = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "taskpilot_sharder_replicas",
		Help: "Live replicas the elected sharder spreads the tasks over (0 on the other replicas).",
	})
	if o.Metrics != nil {
		if err := errors.Join(o.Metrics.Register(s.moves), o.Metrics.Register(s.replicas)); err != nil {
			return nil, fmt.Errorf("sharder metrics: %w", err)
		}
	}
	return s, nil
}

// SetupWithManager adds the sharder's cache, its membership loop and its controller, on every
// replica (they act while leading).
func (s *Sharder) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(kit.EveryReplica{Runnable: s.tasks}); err != nil {
		return fmt.Errorf("add the sharder cache: %w", err)
	}
	if err := mgr.Add(s); err != nil {
		return fmt.Errorf("add the sharder: %w", err)
	}
	// Every create and delete, and updates that moved the assignment (by the sharder itself, or
	// a replica that drained a task).
	assignment := predicate.Funcs{UpdateFunc: kit.AssignmentMoved}
	return ctrl.NewControllerManagedBy(mgr).
		Named("backgroundtask-sharder").
		WatchesRawSource(source.Kind[client.Object](s.tasks, &v1alpha1.BackgroundTask{}, &handler.EnqueueRequestForObject{}, assignment)).
		WatchesRawSource(s.resync.Source()).
		// As many workers as the reconciler: after a replica died, each of its tasks waits for
		// one label write, and those are what a takeover takes beyond the lease.
		WithOptions(controller.Options{MaxConcurrentReconciles: s.workers, NeedLeaderElection: ptr.To(false),
			CacheSyncTimeout: kit.CacheSyncForever}).
		Complete(kit.LeaderOnly(s.leading, s))
}

// NeedLeaderElection: the sharder runs on every replica and acts while leading.
func (s *Sharder) NeedLeaderElection() bool { return false }

// Start follows the membership until ctx ends (manager.Runnable): while this replica leads,
// whenever the set of live replicas changes (or it just became leader), the ring is rebuilt
// and every task is looked at again.
func (s *Sharder) Start(ctx context.Context) error {
	if !s.tasks.WaitForCacheSync(ctx) {
		return nil
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := s.refresh(ctx); err != nil {
			s.log.Info("cannot read the membership (Leases or rows); retrying", "error", err.Error())
		}
	}, membershipPoll)
	return nil
}

// refresh rebuilds the ring when the live replicas (by their Leases or their rows) changed,
// and then looks at every task.
func (s *Sharder) refresh(ctx context.Context) error {
	var leases coordinationv1.LeaseList
	if err := s.leases.List(ctx, &leases, client.InNamespace(s.namespace),
		client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(labels.Set{membership.LabelMember: s.deployment})}); err != nil {
		return fmt.Errorf("list membership Leases: %w", err)
	}
	members, _ := membership.Live(leases.Items, s.deployment, s.observer) // observed on every replica
	if !s.leading() {
		if s.view.Swap(nil) != nil {
			s.replicas.Set(0)
			s.log.Info("not leading; leaving the assignment to the leader")
		}
		return nil
	}
	// Unreadable rows leave the ring as it is: while PostgreSQL is down nobody can claim a
	// task anyway, so a move could only stop a run.
	rows, err := s.liveRows(ctx, s.deployment)
	if err != nil {
		return fmt.Errorf("list membership rows: %w", err)
	}
	live := map[string]bool{}
	for _, m := range slices.Concat(members, rows) {
		live[m] = true
	}
	if old := s.view.Load(); old != nil && maps.Equal(old.live, live) {
		return nil
	}
	sorted := slices.Sorted(maps.Keys(live))
	s.view.Store(&ringView{ring: sharding.NewRing(sorted, 0), live: live})
	s.replicas.Set(float64(len(sorted)))
	s.log.Info("replicas changed; spreading the tasks again", "replicas", sorted)
	list := &v1alpha1.BackgroundTaskList{}
	if err := s.tasks.List(ctx, list); err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	s.lookAtAll(list.Items)
	return nil
}

// lookAtAll queues every task for a look, the ones that may be running first: after a replica
// died, its running tasks wait for their label, and its finished ones (often most of them)
// need one only if they are restarted, so they must not hold the API server in front of the
// running ones (a takeover of 210 running tasks took lease + 4 s behind 267 finished ones).
func (s *Sharder) lookAtAll(tasks []v1alpha1.BackgroundTask) {
	for i := range tasks {
		priority := 0
		if tasks[i].Status.Phase.Terminal() {
			priority = handler.LowPriority
		}
		s.resync.NotifyWithPriority(types.NamespacedName{Namespace: tasks[i].Namespace, Name: tasks[i].Name}, priority)
	}
}

// Reconcile assigns one task (reconcile.Reconciler). SetupWithManager runs it only while this
// replica leads (a new leader looks at every task).
func (s *Sharder) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	view := s.view.Load()
	if view == nil {
		return ctrl.Result{RequeueAfter: membershipPoll}, nil // the membership has not been read yet
	}
	m := &v1alpha1.BackgroundTask{}
	if err := s.tasks.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !s.serves(m.Spec.TaskName) {
		return ctrl.Result{}, nil // another deployment's task type: its own sharder assigns it
	}
	move := sharding.Next(sharding.LabelsOf(m.Labels), view.ring.Assign(string(m.UID)), view.isLive)
	if !move.Patch {
		return ctrl.Result{}, nil
	}
	if err := s.write(ctx, m, move.Want); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: kit.SettleDelay}, nil // it changed meanwhile: look again at the new one
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s.moves.WithLabelValues(moveKind(sharding.LabelsOf(m.Labels), move.Want)).Inc()
	logf.FromContext(ctx).V(1).Info("assignment", "why", move.Why)
	return ctrl.Result{}, nil
}

// write sets the assignment labels of the object it read, guarded by its uid and
// resourceVersion: a replica that removed the labels meanwhile (drained) is never overwritten
// with what the sharder saw before.
func (s *Sharder) write(ctx context.Context, m *v1alpha1.BackgroundTask, want sharding.Labels) error {
	lbl := map[string]any{sharding.LabelShard: nil, sharding.LabelDrain: nil}
	if want.Shard != "" {
		lbl[sharding.LabelShard] = want.Shard
	}
	if want.Draining {
		lbl[sharding.LabelDrain] = "true"
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": m.UID, "resourceVersion": m.ResourceVersion, "labels": lbl,
	}})
	if err != nil {
		return fmt.Errorf("encode labels: %w", err)
	}
	if err := s.client.Patch(ctx, m, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("label %s/%s: %w", m.Namespace, m.Name, err)
	}
	return nil
}

// moveKind names a label write for the metric.
func moveKind(from, to sharding.Labels) string {
	switch {
	case to.Draining:
		return "drain"
	case from.Shard == "" || from.Shard == to.Shard && !from.Draining:
		return "assign"
	case from.Shard == to.Shard:
		return "keep"
	}
	return "move"
}

// withoutPayload is a cache transform for the sharder's view of every task: it keeps what
// assigning a task needs (metadata without managedFields, spec.taskName, status.phase to move
// running tasks first) and drops spec.params and the rest of status, which can be large and
// which it never reads.
func withoutPayload() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		if bt, ok := obj.(*v1alpha1.BackgroundTask); ok && err == nil {
			bt.Spec.Params, bt.Status = nil, v1alpha1.BackgroundTaskStatus{Phase: bt.Status.Phase}
		}
		return obj, err
	}
}
