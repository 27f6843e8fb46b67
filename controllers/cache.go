package controllers

import (
	"strconv"

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
// node's heartbeat), and the BackgroundTasks without their large params (withoutLargeParams)
// and, with sharding, only those assigned to this replica. Set it as cache.Options.ByObject
// (operator.Main does; see operator.Add for embedding).
func CacheByObject(o Options) map[client.Object]cache.ByObject {
	tasks := cache.ByObject{Transform: withoutLargeParams()}
	if o.Sharding {
		tasks.Label = labels.SelectorFromSet(labels.Set{sharding.LabelShard: o.Identity})
	}
	return map[client.Object]cache.ByObject{
		&coordinationv1.Lease{}: {
			Namespaces: map[string]cache.Config{o.Namespace: {}},
			Label:      labels.SelectorFromSet(labels.Set{membership.LabelMember: o.deployment()}),
		},
		&v1alpha1.BackgroundTask{}: tasks,
	}
}

// paramsInCache bounds the params the cache keeps of a task: smaller ones (nearly all) are used
// from the cache; larger ones are read from the API server when a run starts.
const paramsInCache = 1 << 10

// annotationParamsLeftOut marks a cached task whose params the cache left out (their size in
// bytes). It exists only in the cached copy, which is never written back.
const annotationParamsLeftOut = "tasks.taskpilot.dev/params-left-out"

// withoutLargeParams is the cache transform of BackgroundTasks: objects without managedFields,
// and without params larger than paramsInCache. Every replica caches every task it may run, so
// a tenant's large params (up to what etcd takes) would otherwise cost each replica memory per
// object, whether the task runs or not.
func withoutLargeParams() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		bt, ok := obj.(*v1alpha1.BackgroundTask)
		if !ok || err != nil || bt.Spec.Params == nil || len(bt.Spec.Params.Raw) <= paramsInCache {
			return obj, err
		}
		if bt.Annotations == nil {
			bt.Annotations = map[string]string{}
		}
		bt.Annotations[annotationParamsLeftOut] = strconv.Itoa(len(bt.Spec.Params.Raw))
		bt.Spec.Params = nil
		return bt, nil
	}
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
