package kit

import (
	"context"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Wake lets the journal, which knows nothing of controllers, queue a task for a controller when
// something outside Kubernetes changed (a run's transition, a commit). It is a source whose
// Start captures the controller's queue; Notify adds to it and never blocks, and the queue
// de-duplicates repeated notifications of one task. Notifications before the controller
// started are dropped: its initial list covers every task.
type Wake struct {
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
}

// NewWake returns a Wake no controller listens to yet.
func NewWake() *Wake { return &Wake{} }

// Source is the controller's side.
func (w *Wake) Source() source.TypedSource[reconcile.Request] {
	return source.TypedFunc[reconcile.Request](func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.queue.Store(&q)
		return nil
	})
}

// Notify queues a reconcile of nn.
func (w *Wake) Notify(nn types.NamespacedName) {
	if q := w.queue.Load(); q != nil {
		(*q).Add(reconcile.Request{NamespacedName: nn})
	}
}

// NotifyWithPriority queues a reconcile of nn at priority: a controller's priority queue hands
// out higher priorities first (0 is an ordinary event's; handler.LowPriority an initial list's).
// On a plain queue it is Notify.
func (w *Wake) NotifyWithPriority(nn types.NamespacedName, priority int) {
	q := w.queue.Load()
	if q == nil {
		return
	}
	req := reconcile.Request{NamespacedName: nn}
	if pq, ok := (*q).(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: &priority}, req)
		return
	}
	(*q).Add(req)
}
