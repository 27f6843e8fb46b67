package controllers

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// Notifier wakes the reconciler for a task when something outside Kubernetes changed (a runner
// transition, a database write). Notify never blocks, so runner goroutines are never held up by
// a busy controller; repeated notifications for one task before it is delivered coalesce.
// Start forwards them to the channel read by the controller's source.Channel.
type Notifier struct {
	mu      sync.Mutex
	pending map[types.NamespacedName]struct{}
	wake    chan struct{}
	out     chan event.TypedGenericEvent[*v1alpha1.BackgroundTask]
}

// NewNotifier builds a Notifier.
func NewNotifier() *Notifier {
	return &Notifier{
		pending: map[types.NamespacedName]struct{}{},
		wake:    make(chan struct{}, 1),
		out:     make(chan event.TypedGenericEvent[*v1alpha1.BackgroundTask]),
	}
}

// Notify asks for a reconcile of nn.
func (n *Notifier) Notify(nn types.NamespacedName) {
	n.mu.Lock()
	n.pending[nn] = struct{}{}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Events is the channel for source.Channel.
func (n *Notifier) Events() <-chan event.TypedGenericEvent[*v1alpha1.BackgroundTask] { return n.out }

// Start forwards notifications until ctx is done (manager.Runnable).
func (n *Notifier) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		}
		n.mu.Lock()
		batch := n.pending
		n.pending = make(map[types.NamespacedName]struct{}, len(batch))
		n.mu.Unlock()
		for nn := range batch {
			obj := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}
			select {
			case n.out <- event.TypedGenericEvent[*v1alpha1.BackgroundTask]{Object: obj}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}
