package controllers

import (
	"context"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// wake lets the journal, which knows nothing of controllers, queue a task for a controller when
// something outside Kubernetes changed (a run's transition, a commit). It is a source whose
// Start captures the controller's queue; notify adds to it and never blocks, and the queue
// de-duplicates repeated notifications of one task. Notifications before the controller
// started are dropped: its initial list covers every task.
type wake struct {
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
}

func newWake() *wake { return &wake{} }

// source is the controller's side.
func (w *wake) source() source.TypedSource[reconcile.Request] {
	return source.TypedFunc[reconcile.Request](func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.queue.Store(&q)
		return nil
	})
}

// notify queues a reconcile of nn.
func (w *wake) notify(nn types.NamespacedName) {
	if q := w.queue.Load(); q != nil {
		(*q).Add(reconcile.Request{NamespacedName: nn})
	}
}
