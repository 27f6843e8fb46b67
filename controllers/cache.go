package controllers

import (
	"errors"
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
// (operator.Operator.CacheByObject gives it for completed settings). Settings without a
// Namespace, or with sharding and no Identity, are refused: such a cache would watch no Lease or
// no task, and the operator would wait for ever.
func CacheByObject(o Settings) (map[client.Object]cache.ByObject, error) {
	if o.Namespace == "" || o.Sharding && o.Identity == "" {
		return nil, errors.New("controllers: the cache needs the Namespace, and with Sharding the Identity")
	}
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
	}, nil
}

// paramsInCache bounds the params the cache keeps of a task: smaller ones (nearly all) are used
// from the cache; larger ones are read from the API server when a run starts.
const paramsInCache = 1 << 10

// annotationParamsLeftOut marks a cached task whose params the cache left out (their size in
// bytes). It exists only in the cached copy, which is never written back.
const annotationParamsLeftOut = "tasks.taskpilot.dev/params-left-out"

// annotationItemsLeftOut marks a cached task whose spec.items.list the cache left out (its size
// in bytes), like annotationParamsLeftOut.
const annotationItemsLeftOut = "tasks.taskpilot.dev/items-left-out"

// withoutLargeParams is the cache transform of BackgroundTasks: objects without managedFields,
// and without params or an items list larger than paramsInCache. Every replica caches every
// task it may run, so a tenant's large params (up to what etcd takes) would otherwise cost each
// replica memory per object, whether the task runs or not.
func withoutLargeParams() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		bt, ok := obj.(*v1alpha1.BackgroundTask)
		if !ok || err != nil {
			return obj, err
		}
		if bt.Spec.Params != nil && len(bt.Spec.Params.Raw) > paramsInCache {
			leaveOut(bt, annotationParamsLeftOut, len(bt.Spec.Params.Raw))
			bt.Spec.Params = nil
		}
		if items := bt.Spec.Items; items != nil && len(items.List) > 0 {
			size := 0
			for _, v := range items.List {
				size += len(v.Raw)
			}
			if size > paramsInCache {
				leaveOut(bt, annotationItemsLeftOut, size)
				items.List = nil
			}
		}
		return bt, nil
	}
}

// leaveOut marks the cached bt as missing size bytes of what annotation names.
func leaveOut(bt *v1alpha1.BackgroundTask, annotation string, size int) {
	if bt.Annotations == nil {
		bt.Annotations = map[string]string{}
	}
	bt.Annotations[annotation] = strconv.Itoa(size)
}
