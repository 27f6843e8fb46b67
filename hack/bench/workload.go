package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// taskSpec is what a scenario creates.
type taskSpec struct {
	taskName string
	params   string // JSON
	state    v1alpha1.DesiredState
	// queue is the TaskQueue it starts through ("" for none); labels its labels.
	queue  string
	labels map[string]string
}

func taskName(prefix string, i int) string { return fmt.Sprintf("%s-%05d", prefix, i) }

// parallel runs fn(i) for i in [0,n) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// createTasks creates names prefix-00000.. in ns with spec from spec(i), workers at a time.
func createTasks(ctx context.Context, c client.Client, ns, prefix string, n, workers int, spec func(i int) taskSpec) error {
	err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		s := spec(i)
		bt := &v1alpha1.BackgroundTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: taskName(prefix, i), Labels: s.labels},
			Spec: v1alpha1.BackgroundTaskSpec{
				TaskName: s.taskName,
				Params:   &runtime.RawExtension{Raw: []byte(s.params)},
				State:    s.state,
				Queue:    s.queue,
			},
		}
		if err := c.Create(ctx, bt); err != nil {
			return fmt.Errorf("create %s: %w", bt.Name, err)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return err
	}
	return ctx.Err()
}

// patchState merge-patches spec.state of every task and returns the send time of each patch.
func patchState(ctx context.Context, c client.Client, ns, prefix string, n, workers int, state v1alpha1.DesiredState) (map[string]time.Time, error) {
	sent, _, err := patchStateAcked(ctx, c, ns, prefix, n, workers, state)
	return sent, err
}

// patchStateAcked is patchState that also returns when each patch was answered.
func patchStateAcked(ctx context.Context, c client.Client, ns, prefix string, n, workers int, state v1alpha1.DesiredState) (sent, acked map[string]time.Time, err error) {
	var mu sync.Mutex
	sent, acked = make(map[string]time.Time, n), make(map[string]time.Time, n)
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"state":%q}}`, state))
	err = parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		name := taskName(prefix, i)
		bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		t := time.Now()
		if err := c.Patch(ctx, bt, patch); err != nil {
			return fmt.Errorf("patch %s to %s: %w", name, state, err)
		}
		done := time.Now()
		mu.Lock()
		sent[name], acked[name] = t, done
		mu.Unlock()
		return nil
	})
	return sent, acked, err
}
