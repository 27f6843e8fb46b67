package controllers

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// announce tells the transitions since the last Event in one Kubernetes Event, so
// `kubectl describe bgt` tells the whole story while a short task costs one Event instead of
// one per transition (Events are API writes, and the API server is the bottleneck). The full
// history, one row per transition, is in PostgreSQL.
func announce(rec events.EventRecorder, bt *v1alpha1.BackgroundTask, list []Announcement) {
	if rec == nil || len(list) == 0 {
		return
	}
	eventType := corev1.EventTypeNormal
	steps := make([]string, 0, len(list)+1)
	steps = append(steps, phaseName(list[0].From))
	for _, a := range list {
		if a.To == store.StatusFailed || a.Reason == ReasonRetryScheduled {
			eventType = corev1.EventTypeWarning
		}
		steps = append(steps, phaseName(a.To))
	}
	last := list[len(list)-1]
	note := fmt.Sprintf("%s (attempt %d)", strings.Join(steps, " → "), last.Attempt)
	// Failure messages say why; keep them even when later transitions followed (a retry).
	var messages []string
	for _, a := range list {
		if a.Message != "" && (a.To == store.StatusFailed || a == last) && !slices.Contains(messages, a.Message) {
			messages = append(messages, a.Message)
		}
	}
	if len(messages) > 0 {
		note += ": " + strings.Join(messages, "; ")
	}
	rec.Eventf(bt, nil, eventType, nonEmpty(last.Reason, phaseName(last.To)), "Transition", "%s", truncateRunes(note, 1000))
}

func phaseName(s store.Status) string {
	return nonEmpty(string(phaseFromStatus(s)), "New")
}
