package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// Status size bounds: etcd is precious, the full values live in PostgreSQL.
const (
	maxStatusResultBytes = 4 << 10
	maxStatusMessage     = 4096
	maxStatusProgress    = 64
)

// statusInput is everything the desired CR status is computed from.
type statusInput struct {
	Generation      int64
	Desired         v1alpha1.DesiredState
	Previous        v1alpha1.BackgroundTaskStatus
	State           TaskState
	LiveProgress    string // the runner's progress, fresher than the last transition's
	DatabaseProblem string // non-empty while the task could not be loaded from the database
}

// buildStatus computes the status to write. It is pure; the caller writes it only if it
// differs from the current one (times are truncated to what the API stores, seconds, so a
// round trip compares equal).
func buildStatus(in statusInput) v1alpha1.BackgroundTaskStatus {
	s := in.State
	out := v1alpha1.BackgroundTaskStatus{
		Phase:                     phaseFromStatus(s.Status),
		Conditions:                append([]metav1.Condition(nil), in.Previous.Conditions...),
		ObservedGeneration:        in.Generation,
		ObservedRestartGeneration: s.ObservedRestartGeneration,
		Attempt:                   int32(s.Attempt), //nolint:gosec // attempts are bounded by maxRetries ≤ 100 plus restarts
		StartTime:                 apiTime(s.StartTime),
		EndTime:                   apiTime(s.EndTime),
		LastRunTime:               apiTime(s.LastRunTime),
		Progress:                  truncateRunes(s.Progress, maxStatusProgress),
		Message:                   truncateRunes(s.Message, maxStatusMessage),
		Result:                    statusResult(s.Result),
	}
	if in.LiveProgress != "" && (s.Status == store.StatusRunning || s.Status == store.StatusPaused) {
		out.Progress = truncateRunes(in.LiveProgress, maxStatusProgress)
	}
	if s.Status == "" { // not loaded yet (database unreachable on first sight)
		out.Phase = in.Previous.Phase
	}
	for _, c := range conditionsFor(in, out.Phase) {
		c.ObservedGeneration = in.Generation
		meta.SetStatusCondition(&out.Conditions, c)
	}
	// SetStatusCondition stamps new transitions with time.Now at nanosecond precision; the API
	// keeps seconds.
	for i := range out.Conditions {
		out.Conditions[i].LastTransitionTime = out.Conditions[i].LastTransitionTime.Rfc3339Copy()
	}
	return out
}

func conditionsFor(in statusInput, phase v1alpha1.Phase) []metav1.Condition {
	s := in.State
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: string(phase), Message: s.Message}
	switch {
	case phase == v1alpha1.PhaseFinished:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, "Finished", "the task finished"
	case phase == v1alpha1.PhaseFailed:
		ready.Reason = nonEmpty(s.Reason, "Failed")
	case in.Desired == v1alpha1.DesiredRunning && phase == v1alpha1.PhaseRunning,
		in.Desired == v1alpha1.DesiredPaused && (phase == v1alpha1.PhasePaused || phase == v1alpha1.PhasePending),
		in.Desired == v1alpha1.DesiredStopped && phase == v1alpha1.PhaseStopped:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, "AsDesired", fmt.Sprintf("%s as desired", phase)
	default:
		ready.Reason = "Converging"
		ready.Message = fmt.Sprintf("%s, desired %s", nonEmpty(string(phase), "Unknown"), in.Desired)
	}

	progressing := metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: nonEmpty(string(phase), "Unknown")}
	if phase == v1alpha1.PhasePending || phase == v1alpha1.PhaseRunning {
		progressing.Status = metav1.ConditionTrue
		progressing.Reason = nonEmpty(s.Reason, string(phase))
		progressing.Message = s.Message
	}

	degraded := metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: "NoFailure"}
	if phase == v1alpha1.PhaseFailed || s.Reason == ReasonRetryScheduled {
		degraded.Status = metav1.ConditionTrue
		degraded.Reason = nonEmpty(s.Reason, "Failed")
		degraded.Message = s.Message
	}

	recorded := metav1.Condition{Type: v1alpha1.ConditionRecorded, Status: metav1.ConditionTrue, Reason: "Recorded",
		Message: "every transition is written to PostgreSQL"}
	switch {
	case in.DatabaseProblem != "":
		recorded.Status, recorded.Reason = metav1.ConditionFalse, ReasonDatabaseBacklog
		recorded.Message = truncateRunes("cannot load the task's record; retrying: "+in.DatabaseProblem, maxStatusMessage)
	case s.Fenced:
		recorded.Status, recorded.Reason = metav1.ConditionFalse, "Fenced"
		recorded.Message = "the database holds newer transitions written by another operator; this one stopped recording"
	case s.WriteError != "":
		recorded.Status, recorded.Reason = metav1.ConditionFalse, ReasonDatabaseBacklog
		recorded.Message = truncateRunes(fmt.Sprintf("%d write(s) waiting, retrying: %s", s.Backlog, s.WriteError), maxStatusMessage)
	}
	for _, c := range []*metav1.Condition{&ready, &progressing, &degraded, &recorded} {
		c.Message = truncateRunes(c.Message, 32768)
	}
	return []metav1.Condition{ready, progressing, degraded, recorded}
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

func apiTime(t *time.Time) *metav1.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(*t).Rfc3339Copy()
	return &mt
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func nonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
