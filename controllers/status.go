package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/internal/journal"
)

// Status size bounds: etcd is precious, the full values live in PostgreSQL.
const (
	maxStatusResultBytes = 4 << 10
	maxStatusProgress    = 64
)

// recordLag is how long a transition may wait for PostgreSQL before the Recorded condition
// says so (a healthy database commits in milliseconds).
const recordLag = 2 * time.Second

// statusInput is everything the status is computed from.
type statusInput struct {
	Generation int64
	// Desired is spec.state; StartAfter and ResumeAt are spec.startAfter and spec.resumeAt
	// (zero: unset).
	Desired              v1alpha1.DesiredState
	StartAfter, ResumeAt time.Time
	Previous             v1alpha1.BackgroundTaskStatus
	// Committed is what PostgreSQL holds (zero while the task is not tracked).
	Committed journal.Committed
	Tracked   bool
	// LoadProblem is why the task's record could not be loaded (not tracked).
	LoadProblem string
	// LiveProgress is the runner's progress, fresher than the record's.
	LiveProgress string
	// StallWatched: spec.stallTimeout is set, so the Stalled condition is shown.
	StallWatched bool
	// AbandonedAttempt is the attempt of a run that ignored its cancellation and whose
	// goroutine still executes here (0: none).
	AbandonedAttempt int
	// Deferred says why the action that would bring the task to its desired state waits (the
	// journal's backlog is full); "" when it does not.
	Deferred string
	// QueueWaiting says why the task waits for its queue (spec.queue); "" when it does not.
	QueueWaiting string
	// Items are the counts of the task's items (spec.items); nil keeps the previous ones.
	Items *v1alpha1.ItemsStatus
	Now   time.Time

	specState v1alpha1.DesiredState // spec.state, while Desired is what is driven (desiredAt)
}

// waitsForStartAfter: the task is to run but waits Pending for spec.startAfter.
func (in statusInput) waitsForStartAfter(phase v1alpha1.Phase) bool {
	return phase == v1alpha1.PhasePending && in.Desired == v1alpha1.DesiredRunning && in.StartAfter.After(in.Now)
}

func (in statusInput) startAfterMessage() string {
	return "waits for spec.startAfter: starts at " + in.StartAfter.UTC().Format(time.RFC3339)
}

// scheduled is when the task starts or resumes by itself, while it waits for that: the later
// of spec.resumeAt (a Paused task not over yet) and spec.startAfter (a task not started yet
// that is to run); zero when it waits for neither.
func (in statusInput) scheduled() time.Time {
	rec := in.Committed.Record
	var at time.Time
	if in.Desired == v1alpha1.DesiredPaused && in.ResumeAt.After(in.Now) && !rec.Status.Terminal() {
		at = in.ResumeAt
	}
	toRun := in.Desired == v1alpha1.DesiredRunning || !at.IsZero()
	if toRun && rec.Status == lifecycle.Pending && in.StartAfter.After(in.Now) && in.StartAfter.After(at) {
		at = in.StartAfter
	}
	return at
}

// buildStatus computes the status to write. It is pure; the caller writes it only if it
// differs from the current one. Phase, attempt, times, result and observedRestartGeneration
// come from the committed record only, so the object never shows what a crash could take back.
// Times are truncated to what the API stores (seconds), so a round trip compares equal.
func buildStatus(in statusInput) v1alpha1.BackgroundTaskStatus {
	if !in.Tracked {
		out := *in.Previous.DeepCopy()
		out.ObservedGeneration = in.Generation
		setConditions(&out, in.Generation, []metav1.Condition{{Type: v1alpha1.ConditionRecorded, Status: metav1.ConditionFalse,
			Reason: journal.ReasonDatabaseUnreachable, Message: kit.TruncateRunes("cannot load the task's record; retrying: "+in.LoadProblem, kit.MaxStatusMessage)}})
		return out
	}
	rec := in.Committed.Record
	in.specState, in.Desired = in.Desired, desiredAt(in.Desired, in.ResumeAt, rec.Status, in.Now)
	out := v1alpha1.BackgroundTaskStatus{
		Phase:                     v1alpha1.PhaseOf(rec.Status),
		Conditions:                append([]metav1.Condition(nil), in.Previous.Conditions...),
		ObservedGeneration:        in.Generation,
		ObservedRestartGeneration: rec.RestartGeneration,
		Attempt:                   int32(rec.Attempt), //nolint:gosec // attempts are bounded by retries and restarts
		StartTime:                 kit.APITime(rec.StartTime),
		EndTime:                   kit.APITime(rec.EndTime),
		LastRunTime:               kit.APITime(rec.LastRunTime),
		NextRetryTime:             kit.APITime(rec.RetryAt),
		Progress:                  kit.TruncateRunes(in.Committed.Progress, maxStatusProgress),
		Message:                   kit.TruncateRunes(rec.Message, kit.MaxStatusMessage),
		Result:                    statusResult(in.Committed.Result),
		ScheduledTime:             kit.APITime(in.scheduled()),
		Items:                     in.Previous.Items,
	}
	if in.Items != nil {
		out.Items = in.Items
	}
	if in.waitsForStartAfter(out.Phase) {
		out.Message = in.startAfterMessage()
	} else if in.QueueWaiting != "" && (out.Phase == v1alpha1.PhasePending || out.Phase == v1alpha1.PhasePaused) {
		out.Message = in.QueueWaiting
	}
	if in.LiveProgress != "" && (rec.Status == lifecycle.Running || rec.Status == lifecycle.Paused) {
		out.Progress = kit.TruncateRunes(in.LiveProgress, maxStatusProgress)
	}
	setConditions(&out, in.Generation, conditionsFor(in, out.Phase))
	return out
}

// setConditions sets conditions on out, stamped with generation; SetStatusCondition stamps new
// transitions with time.Now at nanosecond precision and the API keeps seconds.
func setConditions(out *v1alpha1.BackgroundTaskStatus, generation int64, conds []metav1.Condition) {
	for _, c := range conds {
		c.ObservedGeneration = generation
		c.Message = kit.TruncateRunes(c.Message, 32768)
		meta.SetStatusCondition(&out.Conditions, c)
	}
	for i := range out.Conditions {
		out.Conditions[i].LastTransitionTime = out.Conditions[i].LastTransitionTime.Rfc3339Copy()
	}
}

func conditionsFor(in statusInput, phase v1alpha1.Phase) []metav1.Condition {
	rec := in.Committed.Record
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: string(phase), Message: rec.Message}
	switch {
	case phase == v1alpha1.PhaseFinished:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, "Finished", "the task finished"
	case phase == v1alpha1.PhaseFailed:
		ready.Reason = kit.NonEmpty(rec.Reason, "Failed")
	case in.Desired == v1alpha1.DesiredRunning && phase == v1alpha1.PhaseRunning && in.specState == v1alpha1.DesiredPaused:
		ready.Status, ready.Reason = metav1.ConditionTrue, v1alpha1.ReasonResumedByResumeAt
		ready.Message = fmt.Sprintf("Running: resumed by spec.resumeAt %s (spec.state still says Paused)", in.ResumeAt.UTC().Format(time.RFC3339))
	case in.Desired == v1alpha1.DesiredPaused && (phase == v1alpha1.PhasePaused || phase == v1alpha1.PhasePending) && in.ResumeAt.After(in.Now):
		ready.Status, ready.Reason = metav1.ConditionTrue, "AsDesired"
		ready.Message = fmt.Sprintf("%s as desired; runs by itself from %s (spec.resumeAt)", phase, in.ResumeAt.UTC().Format(time.RFC3339))
	case in.waitsForStartAfter(phase):
		ready.Reason, ready.Message = v1alpha1.ReasonScheduled, in.startAfterMessage()
	case in.Desired == v1alpha1.DesiredRunning && phase == v1alpha1.PhaseRunning,
		in.Desired == v1alpha1.DesiredPaused && (phase == v1alpha1.PhasePaused || phase == v1alpha1.PhasePending),
		in.Desired == v1alpha1.DesiredStopped && phase == v1alpha1.PhaseStopped:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, "AsDesired", fmt.Sprintf("%s as desired", phase)
	case in.Deferred != "":
		ready.Reason, ready.Message = "Deferred", in.Deferred
	case in.QueueWaiting != "" && (phase == v1alpha1.PhasePending || phase == v1alpha1.PhasePaused):
		ready.Reason, ready.Message = v1alpha1.ReasonQueueWaiting, in.QueueWaiting
	case phase == v1alpha1.PhasePending && rec.Reason == lifecycle.ReasonQueued && in.Desired == v1alpha1.DesiredRunning:
		ready.Reason, ready.Message = lifecycle.ReasonQueued, rec.Message // what the run waits for
	default:
		ready.Reason = "Converging"
		ready.Message = fmt.Sprintf("%s, desired %s", kit.NonEmpty(string(phase), "Unknown"), in.Desired)
	}

	progressing := metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: kit.NonEmpty(string(phase), "Unknown")}
	if phase == v1alpha1.PhasePending || phase == v1alpha1.PhaseRunning {
		progressing.Status = metav1.ConditionTrue
		progressing.Reason = kit.NonEmpty(rec.Reason, string(phase))
		progressing.Message = rec.Message
		if in.waitsForStartAfter(phase) {
			progressing.Reason, progressing.Message = v1alpha1.ReasonScheduled, in.startAfterMessage()
		} else if in.QueueWaiting != "" && phase == v1alpha1.PhasePending {
			progressing.Reason, progressing.Message = v1alpha1.ReasonQueueWaiting, in.QueueWaiting
		}
	}

	degraded := metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: "NoFailure"}
	if phase == v1alpha1.PhaseFailed || rec.Reason == lifecycle.ReasonRetryScheduled {
		degraded.Status = metav1.ConditionTrue
		degraded.Reason = kit.NonEmpty(rec.Reason, "Failed")
		degraded.Message = rec.Message
	}
	conds := []metav1.Condition{ready, progressing, degraded, recordedCondition(in.Committed, in.Now)}
	if c, shown := abandonedCondition(in); shown {
		conds = append(conds, c)
	}
	if in.StallWatched {
		stalled := metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: "Alive"}
		if rec.Status == lifecycle.Running && rec.Reason == lifecycle.ReasonStalled {
			stalled.Status, stalled.Reason, stalled.Message = metav1.ConditionTrue, lifecycle.ReasonStalled, rec.Message
		}
		conds = append(conds, stalled)
	}
	return conds
}

// abandonedCondition is shown once a run of the task was abandoned (True while its goroutine
// still executes, False after it returned).
func abandonedCondition(in statusInput) (metav1.Condition, bool) {
	if in.AbandonedAttempt > 0 {
		return metav1.Condition{Type: v1alpha1.ConditionAbandoned, Status: metav1.ConditionTrue, Reason: "IgnoredCancellation",
			Message: fmt.Sprintf("the run of attempt %d ignored its cancellation past the stop grace and still executes in the operator "+
				"(Go cannot stop a goroutine); the next run of this task waits until it returns", in.AbandonedAttempt)}, true
	}
	if meta.FindStatusCondition(in.Previous.Conditions, v1alpha1.ConditionAbandoned) == nil {
		return metav1.Condition{}, false
	}
	return metav1.Condition{Type: v1alpha1.ConditionAbandoned, Status: metav1.ConditionFalse, Reason: "Returned",
		Message: "no run of this task ignores its cancellation"}, true
}

// recordedCondition says whether every transition of the task is in PostgreSQL, and if not,
// whether the database is unreachable, refused a write, or is only slow.
func recordedCondition(c journal.Committed, now time.Time) metav1.Condition {
	cond := metav1.Condition{Type: v1alpha1.ConditionRecorded, Status: metav1.ConditionTrue, Reason: "Recorded",
		Message: "every transition is written to PostgreSQL"}
	switch {
	case c.Problem.Reason != "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, c.Problem.Reason, kit.TruncateRunes(c.Problem.Message, kit.MaxStatusMessage)
	case c.Backlog > 0 && now.Sub(c.OldestPending) >= recordLag:
		cond.Status, cond.Reason = metav1.ConditionFalse, "RecordPending"
		cond.Message = fmt.Sprintf("%d transition(s) not yet written to PostgreSQL, the oldest for %s",
			c.Backlog, now.Sub(c.OldestPending).Truncate(time.Second))
	}
	return cond
}

// statusResult bounds the result shown in the CR: results must be JSON objects there, and big
// ones stay in PostgreSQL only.
func statusResult(raw json.RawMessage) *runtime.RawExtension {
	if len(raw) == 0 {
		return nil
	}
	if len(raw) > maxStatusResultBytes {
		return &runtime.RawExtension{Raw: fmt.Appendf(nil, `{"truncated":true,"bytes":%d}`, len(raw))}
	}
	// Normalise to what the API server returns (compact, keys sorted, numbers verbatim) so an
	// unchanged result compares equal after a round trip and causes no write.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	if _, isObject := v.(map[string]any); !isObject {
		v = map[string]any{"value": v}
	}
	norm, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return &runtime.RawExtension{Raw: norm}
}
