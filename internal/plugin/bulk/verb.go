package bulk

import (
	"fmt"
	"strconv"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// FieldManager names the plugin's writes in managedFields.
const FieldManager = "kubectl-taskpilot"

// Verb is a lifecycle request for a task.
type Verb string

// The verbs and what each sets in spec.
const (
	Pause   Verb = "pause"   // spec.state Paused
	Resume  Verb = "resume"  // spec.state Running
	Stop    Verb = "stop"    // spec.state Stopped
	Restart Verb = "restart" // spec.restartGeneration + 1
	// RetryFailed restarts a task with items keeping those that succeeded:
	// spec.restartGeneration + 1 and spec.items.retryFailedGeneration set to it.
	RetryFailed Verb = "retry-failed"
)

// Verbs lists every verb, in the order help text shows them.
func Verbs() []Verb { return []Verb{Pause, Resume, Stop, Restart, RetryFailed} }

// restarts reports whether the verb bumps spec.restartGeneration.
func (v Verb) restarts() bool { return v == Restart || v == RetryFailed }

// Done is the verb's past tense, as the summary prints it ("paused").
func (v Verb) Done() string {
	switch v {
	case Pause:
		return "paused"
	case Resume:
		return "resumed"
	case Stop:
		return "stopped"
	case Restart:
		return "restarted"
	case RetryFailed:
		return "retried"
	}
	return string(v)
}

// state is the spec.state the verb asks for; "" for restart, which keeps it.
func (v Verb) state() v1alpha1.DesiredState {
	switch v {
	case Pause:
		return v1alpha1.DesiredPaused
	case Resume:
		return v1alpha1.DesiredRunning
	case Stop:
		return v1alpha1.DesiredStopped
	case Restart, RetryFailed:
	}
	return ""
}

// specState is spec.state with the API's default applied.
func specState(t *v1alpha1.BackgroundTask) v1alpha1.DesiredState {
	if t.Spec.State == "" {
		return v1alpha1.DesiredRunning
	}
	return t.Spec.State
}

// change is the spec change the verb makes to t, as a JSON merge patch body (its
// resourceVersion is added by the caller), and a description of it for the summary. patch is
// nil when spec already says what the verb asks.
func (v Verb) change(t *v1alpha1.BackgroundTask) (patch []byte, describe string) {
	if v == Restart {
		next := t.Spec.RestartGeneration + 1
		return fmt.Appendf(nil, `{"spec":{"restartGeneration":%d}}`, next),
			fmt.Sprintf("restartGeneration %d → %d", t.Spec.RestartGeneration, next)
	}
	if v == RetryFailed {
		if t.Spec.Items == nil {
			return nil, "has no spec.items: nothing to retry"
		}
		if items := t.Status.Items; items != nil && t.Status.Phase.Terminal() && items.Failed == 0 && items.Pending == 0 && items.Running == 0 {
			return nil, "no item failed"
		}
		next := t.Spec.RestartGeneration + 1
		return fmt.Appendf(nil, `{"spec":{"restartGeneration":%d,"items":{"retryFailedGeneration":%d}}}`, next, next),
			fmt.Sprintf("restartGeneration %d → %d, keeping the items that succeeded", t.Spec.RestartGeneration, next)
	}
	want, have := v.state(), specState(t)
	if v == Pause && t.Spec.ResumeAt != nil {
		// A Paused task whose resumeAt passed runs: pausing means dropping it too.
		describe = fmt.Sprintf("spec.resumeAt %s removed", t.Spec.ResumeAt.UTC().Format(time.RFC3339))
		if have != want {
			describe = fmt.Sprintf("spec.state %s → %s, %s", have, want, describe)
		}
		return fmt.Appendf(nil, `{"spec":{"state":%s,"resumeAt":null}}`, strconv.Quote(string(want))), describe
	}
	if have == want {
		return nil, fmt.Sprintf("spec.state is already %s", want)
	}
	return fmt.Appendf(nil, `{"spec":{"state":%s}}`, strconv.Quote(string(want))),
		fmt.Sprintf("spec.state %s → %s", have, want)
}
