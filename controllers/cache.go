package controllers

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/internal/sharding"
)

// CacheByObject is what a manager running the operator caches beyond its defaults: the
// membership Leases of its own deployment (a cluster-wide Lease informer would follow every
// node's heartbeat) and, with sharding, only the BackgroundTasks assigned to this replica.
// Set it as cache.Options.ByObject (operator.Main does; see operator.Add for embedding).
func CacheByObject(o Options) map[client.Object]cache.ByObject {
	by := map[client.Object]cache.ByObject{
		&coordinationv1.Lease{}: {
			Namespaces: map[string]cache.Config{o.Namespace: {}},
			Label:      labels.SelectorFromSet(labels.Set{membership.LabelMember: o.deployment()}),
		},
	}
	if o.Sharding {
		by[&v1alpha1.BackgroundTask{}] = cache.ByObject{Label: labels.SelectorFromSet(labels.Set{sharding.LabelShard: o.Identity})}
	}
	return by
}

// withoutPayload is a cache transform for the sharder's view of every task: it keeps what
// assigning a task needs (metadata without managedFields, spec.taskName) and drops spec.params
// and status, which can be large and which it never reads.
func withoutPayload() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		if bt, ok := obj.(*v1alpha1.BackgroundTask); ok && err == nil {
			bt.Spec.Params, bt.Status = nil, v1alpha1.BackgroundTaskStatus{}
		}
		return obj, err
	}
}
