package controllers

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/journal"
)

// announce tells the transitions committed since the last Event in one Kubernetes Event, when
// they are worth telling: a failure, a retry, a pause, a stop, a restart, a resume, a rejected
// write. A task that just ran and finished costs no Event (Events are API writes, and the API
// server is the bottleneck); its history is in PostgreSQL, one row per transition, and
// `kubectl describe bgt` still shows its phase and conditions.
func announce(rec events.EventRecorder, bt *v1alpha1.BackgroundTask, list []journal.Announcement) {
	if rec == nil || !slices.ContainsFunc(list, notable) {
		return
	}
	eventType := corev1.EventTypeNormal
	steps := make([]string, 0, len(list)+1)
	steps = append(steps, phaseName(list[0].From))
	for _, a := range list {
		if a.Warning || a.To == lifecycle.Failed || a.Reason == lifecycle.ReasonRetryScheduled || a.Reason == lifecycle.ReasonStalled {
			eventType = corev1.EventTypeWarning
		}
		steps = append(steps, phaseName(a.To))
	}
	last := list[len(list)-1]
	note := fmt.Sprintf("%s (attempt %d)", strings.Join(steps, " → "), last.Attempt)
	// Failure messages say why; keep them even when later transitions followed (a retry).
	var messages []string
	for _, a := range list {
		if a.Message != "" && (a.Warning || a.To == lifecycle.Failed || a == last) && !slices.Contains(messages, a.Message) {
			messages = append(messages, a.Message)
		}
	}
	if len(messages) > 0 {
		note += ": " + strings.Join(messages, "; ")
	}
	rec.Eventf(bt, nil, eventType, kit.NonEmpty(last.Reason, phaseName(last.To)), "Transition", "%s", kit.TruncateRunes(note, 1000))
}

// notable: anything but the plain path of a run (queued, started, completed).
func notable(a journal.Announcement) bool {
	plainFrom := a.From == "" || a.From == lifecycle.Pending || a.From == lifecycle.Running
	plainTo := a.To == lifecycle.Pending || a.To == lifecycle.Running || a.To == lifecycle.Finished
	plainReason := a.Reason == lifecycle.ReasonQueued || a.Reason == lifecycle.ReasonStarted || a.Reason == lifecycle.ReasonCompleted
	return a.Warning || !plainFrom || !plainTo || !plainReason
}

func phaseName(s lifecycle.Status) string {
	return kit.NonEmpty(string(v1alpha1.PhaseOf(s)), "New")
}
