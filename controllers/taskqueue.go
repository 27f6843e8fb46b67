package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/store"
)

// queueStatusEvery is how often the elected operator reads a queue's counts from PostgreSQL
// into its status and metrics.
const queueStatusEvery = 5 * time.Second

// queueController keeps each TaskQueue's row in PostgreSQL equal to its spec (the admission
// rounds read it there, so every replica applies the same limits) and its status equal to what
// PostgreSQL holds. It acts on the elected leader; the row of a deleted queue is removed, and
// its tasks wait until a queue of that name exists again.
type queueController struct {
	client  client.Client
	store   *store.Repository
	clock   clock.PassiveClock
	leading func() bool
	timeout time.Duration
	metrics *queueMetrics
}

// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskqueues,verbs=get;list;watch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=taskqueues/status,verbs=get;update;patch

func (c *queueController) setupWithManager(mgr ctrl.Manager, look *kit.Wake) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.TaskQueue{}).
		WatchesRawSource(look.Source()).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), CacheSyncTimeout: kit.CacheSyncForever}).
		Named("taskqueue").
		Complete(kit.LeaderOnly(c.leading, c))
}

// lookAtEveryQueue queues every TaskQueue, and every queue row, on becoming leader: the looks
// of the other replicas were dropped (LeaderOnly), so a queue created, changed or deleted while
// nobody led is written, and one deleted meanwhile has its row removed.
func (c *queueController) lookAtEveryQueue(ctx context.Context, look *kit.Wake) {
	var list v1alpha1.TaskQueueList
	if err := c.client.List(ctx, &list); err == nil {
		for i := range list.Items {
			look.Notify(types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name})
		}
	}
	dbctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if rows, err := c.store.Queues(dbctx); err == nil {
		for _, row := range rows {
			look.Notify(types.NamespacedName{Namespace: row.Namespace, Name: row.Name})
		}
	}
}

// Reconcile writes the queue's row and status (reconcile.Reconciler).
func (c *queueController) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dbctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var q v1alpha1.TaskQueue
	if err := c.client.Get(ctx, req.NamespacedName, &q); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get queue %s: %w", req.NamespacedName, err)
		}
		c.metrics.forget(req.Namespace, req.Name)
		return ctrl.Result{}, c.dropRows(dbctx, req.NamespacedName, "")
	}
	now := c.clock.Now()
	row, err := queueRow(&q)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := c.store.SaveQueue(dbctx, row, now); err != nil {
		return ctrl.Result{}, c.setReady(ctx, &q, metav1.ConditionFalse, "DatabaseUnreachable", err.Error())
	}
	stats, err := c.store.QueueStats(dbctx, q.Namespace, q.Name, now)
	if err != nil {
		return ctrl.Result{}, c.setReady(ctx, &q, metav1.ConditionFalse, "DatabaseUnreachable", err.Error())
	}
	c.metrics.set(q.Namespace, q.Name, int(q.Spec.Concurrency), stats, now)
	next := q.Status.DeepCopy()
	//nolint:gosec // counts of rows
	next.Running, next.Pending, next.Paused = int32(stats.Running), int32(stats.Pending), int32(stats.Paused)
	next.AdmittedLastMinute = int32(stats.AdmittedLastMinute) //nolint:gosec // counts of rows
	next.OldestPendingSince = kit.APITime(ptr.Deref(stats.OldestWaitingSince, time.Time{}))
	next.ObservedGeneration = q.Generation
	paused := metav1.Condition{Type: v1alpha1.ConditionPaused, Status: metav1.ConditionFalse, Reason: "Admitting", ObservedGeneration: q.Generation,
		Message: "the queue starts tasks as places free up"}
	switch {
	case q.Spec.PausedAt(now) && q.Spec.PausedUntil != nil:
		paused.Status, paused.Reason = metav1.ConditionTrue, "PausedUntil"
		paused.Message = "no task starts until " + q.Spec.PausedUntil.UTC().Format(time.RFC3339)
	case q.Spec.PausedAt(now):
		paused.Status, paused.Reason, paused.Message = metav1.ConditionTrue, "Paused", "no task starts until spec.paused is false"
	case q.Spec.Paused:
		paused.Reason, paused.Message = "PauseEnded", "spec.pausedUntil passed: the queue starts tasks again"
	}
	meta.SetStatusCondition(&next.Conditions, paused)
	meta.SetStatusCondition(&next.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Recorded",
		ObservedGeneration: q.Generation, Message: "the queue is recorded in PostgreSQL; every replica admits through it"})
	if err := c.writeStatus(ctx, &q, next); err != nil {
		return ctrl.Result{}, err
	}
	after := queueStatusEvery
	if q.Spec.PausedAt(now) && q.Spec.PausedUntil != nil {
		after = min(after, q.Spec.PausedUntil.Sub(now)+time.Millisecond) // say at once that it resumed
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// queueRow is the row of a queue's spec.
func queueRow(q *v1alpha1.TaskQueue) (store.Queue, error) {
	row := store.Queue{Namespace: q.Namespace, Name: q.Name, UID: string(q.UID), Concurrency: int(q.Spec.Concurrency),
		Paused: q.Spec.Paused, RateBurst: 1, AgingSeconds: 60, Weights: json.RawMessage("{}")}
	if q.Spec.PausedUntil != nil {
		row.PausedUntil = ptr.To(q.Spec.PausedUntil.Time)
	}
	if q.Spec.PriorityAging != nil {
		row.AgingSeconds = q.Spec.PriorityAging.Seconds()
	}
	if f := q.Spec.Fairness; f != nil {
		row.FairnessKey = f.Key
		if len(f.Weights) > 0 {
			w, err := json.Marshal(f.Weights)
			if err != nil {
				return row, fmt.Errorf("encode the weights of queue %s/%s: %w", q.Namespace, q.Name, err)
			}
			row.Weights = w
		}
	}
	if rl := q.Spec.RateLimit; rl != nil {
		period := time.Second
		if rl.Period != nil {
			period = rl.Period.Duration
		}
		row.RatePerSecond = ptr.To(float64(rl.Starts) / period.Seconds())
		row.RateBurst = int(ptr.Deref(rl.Burst, rl.Starts))
	}
	return row, nil
}

// dropRows removes the row of a deleted queue (any uid but keep).
func (c *queueController) dropRows(ctx context.Context, nn types.NamespacedName, keep string) error {
	rows, err := c.store.Queues(ctx)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if row.Namespace == nn.Namespace && row.Name == nn.Name && row.UID != keep {
			if err := c.store.DeleteQueue(ctx, row.Namespace, row.Name, row.UID); err != nil {
				return err
			}
		}
	}
	return nil
}

// setReady reports a queue its row cannot be written for, and returns err to retry.
func (c *queueController) setReady(ctx context.Context, q *v1alpha1.TaskQueue, status metav1.ConditionStatus, reason, msg string) error {
	next := q.Status.DeepCopy()
	meta.SetStatusCondition(&next.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason,
		ObservedGeneration: q.Generation, Message: kit.TruncateRunes(msg, kit.MaxStatusMessage)})
	if err := c.writeStatus(ctx, q, next); err != nil {
		return err
	}
	return fmt.Errorf("queue %s/%s: %s", q.Namespace, q.Name, msg)
}

// writeStatus writes next when it differs from the queue's status.
func (c *queueController) writeStatus(ctx context.Context, q *v1alpha1.TaskQueue, next *v1alpha1.TaskQueueStatus) error {
	for i := range next.Conditions {
		next.Conditions[i].LastTransitionTime = next.Conditions[i].LastTransitionTime.Rfc3339Copy()
	}
	if equality.Semantic.DeepEqual(&q.Status, next) {
		return nil
	}
	patch := client.MergeFrom(q.DeepCopy())
	q.Status = *next
	if err := c.client.Status().Patch(ctx, q, patch); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("write the status of queue %s/%s: %w", q.Namespace, q.Name, err))
	}
	return nil
}

// queueMetrics are the taskpilot_queue_* series, written by the elected operator from
// PostgreSQL's counts (the same on every replica's scrape would be counted thrice).
type queueMetrics struct {
	running, pending, concurrency, oldest *prometheus.GaugeVec
	admitted                              *prometheus.GaugeVec
}

func newQueueMetrics(reg prometheus.Registerer) (*queueMetrics, error) {
	// Not "namespace": Prometheus's target labels name the pod's namespace so.
	labels := []string{"queue_namespace", "queue"}
	m := &queueMetrics{
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "taskpilot_queue_running",
			Help: "Tasks holding a place in the queue (running, or admitted and starting), from PostgreSQL; set by the elected operator."}, labels),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "taskpilot_queue_pending",
			Help: "Tasks waiting for a place in the queue, from PostgreSQL; set by the elected operator."}, labels),
		concurrency: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "taskpilot_queue_concurrency",
			Help: "The queue's spec.concurrency: the most tasks running at once across every replica."}, labels),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "taskpilot_queue_oldest_pending_seconds",
			Help: "How long the longest-waiting task of the queue has waited (0: none waits)."}, labels),
		admitted: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "taskpilot_queue_admitted",
			Help: "Starts the queue has allowed since it was created, from PostgreSQL (use increase() or rate())."}, labels),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.running, m.pending, m.concurrency, m.oldest, m.admitted} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("queue metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *queueMetrics) set(namespace, queue string, concurrency int, s store.QueueStats, now time.Time) {
	m.running.WithLabelValues(namespace, queue).Set(float64(s.Running))
	m.pending.WithLabelValues(namespace, queue).Set(float64(s.Pending))
	m.concurrency.WithLabelValues(namespace, queue).Set(float64(concurrency))
	m.admitted.WithLabelValues(namespace, queue).Set(float64(s.Admitted))
	oldest := 0.0
	if s.OldestWaitingSince != nil {
		oldest = max(now.Sub(*s.OldestWaitingSince).Seconds(), 0)
	}
	m.oldest.WithLabelValues(namespace, queue).Set(oldest)
}

func (m *queueMetrics) forget(namespace, queue string) {
	for _, g := range []*prometheus.GaugeVec{m.running, m.pending, m.concurrency, m.oldest, m.admitted} {
		g.DeleteLabelValues(namespace, queue)
	}
}
