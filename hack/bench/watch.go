package main

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// phaseWatcher follows the BackgroundTasks of one namespace and records, per task, when it
// last entered each phase (the time this process received the event).
type phaseWatcher struct {
	mu      sync.Mutex
	phase   map[string]v1alpha1.Phase
	entered map[string]map[v1alpha1.Phase]time.Time
	uid     map[string]string
}

func newPhaseWatcher() *phaseWatcher {
	return &phaseWatcher{phase: map[string]v1alpha1.Phase{}, entered: map[string]map[v1alpha1.Phase]time.Time{}, uid: map[string]string{}}
}

func (w *phaseWatcher) observe(bt *v1alpha1.BackgroundTask, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.uid[bt.Name] = string(bt.UID)
	p := bt.Status.Phase
	if w.phase[bt.Name] == p {
		return
	}
	w.phase[bt.Name] = p
	if w.entered[bt.Name] == nil {
		w.entered[bt.Name] = map[v1alpha1.Phase]time.Time{}
	}
	w.entered[bt.Name][p] = at
}

// count returns how many tasks are in phase p now.
func (w *phaseWatcher) count(p v1alpha1.Phase) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, q := range w.phase {
		if q == p {
			n++
		}
	}
	return n
}

// enteredAt returns when name last entered phase p.
func (w *phaseWatcher) enteredAt(name string, p v1alpha1.Phase) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.entered[name][p]
	return t, ok
}

// lastEntered is the latest time any task entered p.
func (w *phaseWatcher) lastEntered(p v1alpha1.Phase) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, m := range w.entered {
		if t := m[p]; t.After(last) {
			last = t
		}
	}
	return last
}

// run lists and watches ns until ctx is done, re-listing when the watch expires.
func (w *phaseWatcher) run(ctx context.Context, c client.WithWatch, ns string) {
	for ctx.Err() == nil {
		var list v1alpha1.BackgroundTaskList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		now := time.Now()
		for i := range list.Items {
			w.observe(&list.Items[i], now)
		}
		w.follow(ctx, c, ns, list.ResourceVersion)
	}
}

// follow watches from rv until the watch ends or fails.
func (w *phaseWatcher) follow(ctx context.Context, c client.WithWatch, ns, rv string) {
	for ctx.Err() == nil {
		wi, err := c.Watch(ctx, &v1alpha1.BackgroundTaskList{}, &client.ListOptions{
			Namespace: ns,
			Raw:       &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true},
		})
		if err != nil {
			return
		}
		for ev := range wi.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				if bt, ok := ev.Object.(*v1alpha1.BackgroundTask); ok {
					w.observe(bt, time.Now())
					rv = bt.ResourceVersion
				}
			case watch.Bookmark:
				if bt, ok := ev.Object.(*v1alpha1.BackgroundTask); ok {
					rv = bt.ResourceVersion
				}
			case watch.Deleted: // the bench never deletes tasks while watching
			case watch.Error:
				wi.Stop()
				return // expired or failed: re-list
			}
		}
		wi.Stop()
	}
}

// sleepCtx sleeps d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
