package webui

import (
	"context"
	"slices"
	"strings"

	"k8s.io/client-go/tools/cache"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// TaskSource is what the pages read tasks from: a live, in-memory view of the cluster.
type TaskSource interface {
	// List returns every task, sorted by namespace and name.
	List() []*v1alpha1.BackgroundTask
	// Get returns one task.
	Get(namespace, name string) (*v1alpha1.BackgroundTask, bool)
	// Subscribe is told after the task namespace/name changes ("" for any task).
	Subscribe(key string) (<-chan struct{}, func())
}

// TaskCache is a TaskSource fed by an informer on a list-watch: one list, then the watch.
type TaskCache struct {
	store      cache.Store
	controller cache.Controller
	hub        *hub
}

// NewTaskCache watches the tasks lw lists. Call Run.
func NewTaskCache(lw cache.ListerWatcher) *TaskCache {
	c := &TaskCache{hub: newHub()}
	changed := func(obj any) {
		if t, ok := obj.(*v1alpha1.BackgroundTask); ok {
			c.hub.notify(t.Namespace + "/" + t.Name)
			return
		}
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			c.hub.notify(d.Key)
		}
	}
	c.store, c.controller = cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &v1alpha1.BackgroundTask{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    changed,
			UpdateFunc: func(_, obj any) { changed(obj) },
			DeleteFunc: changed,
		},
	})
	return c
}

// Run keeps the cache current until ctx ends.
func (c *TaskCache) Run(ctx context.Context) { c.controller.RunWithContext(ctx) }

// WaitForSync waits for the first list; false if ctx ended first.
func (c *TaskCache) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.controller.HasSynced)
}

// List implements TaskSource.
func (c *TaskCache) List() []*v1alpha1.BackgroundTask {
	objs := c.store.List()
	out := make([]*v1alpha1.BackgroundTask, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(*v1alpha1.BackgroundTask); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.BackgroundTask) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// Get implements TaskSource.
func (c *TaskCache) Get(namespace, name string) (*v1alpha1.BackgroundTask, bool) {
	o, ok, err := c.store.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	t, ok := o.(*v1alpha1.BackgroundTask)
	return t, ok
}

// Subscribe implements TaskSource.
func (c *TaskCache) Subscribe(key string) (<-chan struct{}, func()) { return c.hub.subscribe(key) }
