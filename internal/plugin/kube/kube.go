// Package kube holds the small pieces of client wiring that the kubectl plugin's commands and
// its web view share: the scheme of the types they read and a list-watch of BackgroundTasks
// for informers and watchtools.
package kube

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// NewScheme knows the built-in types (Events) and BackgroundTasks.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(s), v1alpha1.AddToScheme(s)); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	return s, nil
}

// NewClient is a direct (uncached) client that can also watch.
func NewClient(cfg *rest.Config) (client.WithWatch, error) {
	s, err := NewScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return c, nil
}

// TaskListWatch lists and watches the BackgroundTasks in namespace ("" for all namespaces)
// that match selector (nil for all) and, when given, one of fields (a name: the field
// selector metadata.name=...): one list and one watch for the plugin's views, its bulk verbs'
// waits and operator.Client.Wait alike.
func TaskListWatch(c client.WithWatch, namespace string, selector labels.Selector, fields ...fields.Selector) cache.ListerWatcher {
	opts := func(o metav1.ListOptions) []client.ListOption {
		if len(fields) > 0 && fields[0] != nil && !fields[0].Empty() {
			o.FieldSelector = fields[0].String()
		}
		out := []client.ListOption{&client.ListOptions{Raw: &o}}
		if namespace != "" {
			out = append(out, client.InNamespace(namespace))
		}
		if selector != nil && !selector.Empty() {
			out = append(out, client.MatchingLabelsSelector{Selector: selector})
		}
		return out
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list := &v1alpha1.BackgroundTaskList{}
			if err := c.List(ctx, list, opts(o)...); err != nil {
				return nil, err
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.Watch(ctx, &v1alpha1.BackgroundTaskList{}, opts(o)...)
		},
	}
}
