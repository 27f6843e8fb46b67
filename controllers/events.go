package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// EventEmitter turns transitions into Kubernetes Events, so `kubectl describe bgt` tells the
// story. Events are sent asynchronously by client-go's broadcaster.
type EventEmitter struct {
	Recorder events.EventRecorder
}

// Transition implements TransitionEvents.
func (e EventEmitter) Transition(nn types.NamespacedName, uid string, from store.Status, c Change) {
	if e.Recorder == nil {
		return
	}
	obj := &v1alpha1.BackgroundTask{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion().String(), Kind: "BackgroundTask"},
		ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name, UID: types.UID(uid)},
	}
	eventType := corev1.EventTypeNormal
	if c.To == store.StatusFailed || c.Reason == ReasonRetryScheduled {
		eventType = corev1.EventTypeWarning
	}
	note := fmt.Sprintf("%s → %s (attempt %d)", nonEmpty(string(phaseFromStatus(from)), "New"), phaseFromStatus(c.To), c.Attempt)
	if c.Message != "" {
		note += ": " + c.Message
	}
	e.Recorder.Eventf(obj, nil, eventType, nonEmpty(c.Reason, string(phaseFromStatus(c.To))), "Transition", "%s", truncateRunes(note, 1000))
}
