package webui

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// ClientEvents lists a task's Events with the user's client, by the object's uid (the field
// selector kubectl describe uses), so Events of an earlier object of the same name are not
// shown.
type ClientEvents struct{ Client client.Client }

// TaskEvents implements Events.
func (e ClientEvents) TaskEvents(ctx context.Context, t *v1alpha1.BackgroundTask) ([]corev1.Event, error) {
	var l corev1.EventList
	err := e.Client.List(ctx, &l, client.InNamespace(t.Namespace), client.MatchingFields{"involvedObject.uid": string(t.UID)})
	if err != nil {
		return nil, fmt.Errorf("list Events: %w", err)
	}
	return l.Items, nil
}

// ClientQueues reads TaskQueues with a client (Queues).
type ClientQueues struct{ Client client.Client }

// TaskQueues implements Queues.
func (q ClientQueues) TaskQueues(ctx context.Context, namespace string) ([]v1alpha1.TaskQueue, error) {
	var l v1alpha1.TaskQueueList
	var opts []client.ListOption
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := q.Client.List(ctx, &l, opts...); err != nil {
		return nil, fmt.Errorf("list TaskQueues: %w", err)
	}
	return l.Items, nil
}
