package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/journal"
)

func TestStatusResult(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"object is normalised like the API server does", `{ "b": 1, "a": [1, 2] }`, `{"a":[1,2],"b":1}`},
		{"big numbers are kept verbatim", `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
		{"a scalar is wrapped in an object", `42`, `{"value":42}`},
		{"an array is wrapped in an object", `[1,2]`, `{"value":[1,2]}`},
		{"too big is replaced by a marker", `{"s":"` + strings.Repeat("x", 5000) + `"}`, `{"truncated":true,"bytes":5008}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := statusResult(json.RawMessage(tc.raw))
			require.NotNil(t, got)
			require.Equal(t, tc.want, string(got.Raw))
		})
	}
	require.Nil(t, statusResult(nil))
	require.Nil(t, statusResult(json.RawMessage(`{not json`)))
}

func TestBuildStatusIsStableAcrossRoundTrips(t *testing.T) {
	start := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	in := statusInput{
		Generation: 3,
		Desired:    v1alpha1.DesiredRunning,
		Tracked:    true,
		Committed: journal.Committed{
			Record:   lifecycle.Record{Status: lifecycle.Running, Attempt: 2, Reason: "Started", Seq: 4, StartTime: start, LastRunTime: start, RestartGeneration: 1},
			Progress: "3/10",
		},
		Now: start,
	}
	first := buildStatus(in)
	require.Equal(t, v1alpha1.PhaseRunning, first.Phase)
	require.Equal(t, int32(2), first.Attempt)
	require.Equal(t, int64(3), first.ObservedGeneration)
	require.Equal(t, int64(1), first.ObservedRestartGeneration, "from the committed record")
	require.Equal(t, 0, first.StartTime.Nanosecond(), "times are truncated to what the API keeps")

	// What the API server hands back compares equal: no write when nothing changed.
	data, err := json.Marshal(first)
	require.NoError(t, err)
	var roundTripped v1alpha1.BackgroundTaskStatus
	require.NoError(t, json.Unmarshal(data, &roundTripped))
	in.Previous = roundTripped
	require.True(t, equality.Semantic.DeepEqual(roundTripped, buildStatus(in)))

	// Live progress from the runner wins while running.
	in.LiveProgress = "4/10"
	require.Equal(t, "4/10", buildStatus(in).Progress)
}

func TestConditions(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	cond := func(s v1alpha1.BackgroundTaskStatus, typ string) metav1.Condition {
		for _, c := range s.Conditions {
			if c.Type == typ {
				return c
			}
		}
		t.Fatalf("no %s condition", typ)
		return metav1.Condition{}
	}
	build := func(desired v1alpha1.DesiredState, c journal.Committed) v1alpha1.BackgroundTaskStatus {
		return buildStatus(statusInput{Desired: desired, Committed: c, Tracked: true, Now: now})
	}
	record := func(s lifecycle.Status, reason, message string) journal.Committed {
		return journal.Committed{Record: lifecycle.Record{Status: s, Attempt: 1, Reason: reason, Message: message}}
	}
	paused := build(v1alpha1.DesiredPaused, record(lifecycle.Paused, "Paused", ""))
	require.Equal(t, metav1.ConditionTrue, cond(paused, v1alpha1.ConditionReady).Status)
	require.Equal(t, metav1.ConditionFalse, cond(paused, v1alpha1.ConditionProgressing).Status)

	converging := build(v1alpha1.DesiredPaused, record(lifecycle.Running, "Started", ""))
	require.Equal(t, metav1.ConditionFalse, cond(converging, v1alpha1.ConditionReady).Status)
	require.Equal(t, "Converging", cond(converging, v1alpha1.ConditionReady).Reason)

	failed := build(v1alpha1.DesiredRunning, record(lifecycle.Failed, lifecycle.ReasonDeadlineExceeded, "too slow"))
	require.Equal(t, lifecycle.ReasonDeadlineExceeded, cond(failed, v1alpha1.ConditionReady).Reason)
	require.Equal(t, metav1.ConditionTrue, cond(failed, v1alpha1.ConditionDegraded).Status)

	unreachable := record(lifecycle.Running, "Started", "")
	unreachable.Backlog, unreachable.Problem = 3, journal.Problem{Reason: journal.ReasonDatabaseUnreachable, Message: "3 transition(s) waiting: connection refused"}
	rec := cond(build(v1alpha1.DesiredRunning, unreachable), v1alpha1.ConditionRecorded)
	require.Equal(t, metav1.ConditionFalse, rec.Status)
	require.Equal(t, journal.ReasonDatabaseUnreachable, rec.Reason)
	require.Contains(t, rec.Message, "3 transition(s) waiting")

	rejected := record(lifecycle.Failed, lifecycle.ReasonRecordRejected, "")
	rejected.Problem = journal.Problem{Reason: journal.ReasonRecordRejected, Message: "PostgreSQL rejected a transition write"}
	require.Equal(t, journal.ReasonRecordRejected, cond(build(v1alpha1.DesiredRunning, rejected), v1alpha1.ConditionRecorded).Reason,
		"a refused write is told apart from an unreachable database")

	slow := record(lifecycle.Running, "Started", "")
	slow.Backlog, slow.OldestPending = 1, now.Add(-time.Second)
	require.Equal(t, metav1.ConditionTrue, cond(build(v1alpha1.DesiredRunning, slow), v1alpha1.ConditionRecorded).Status, "a write in flight is normal")
	slow.OldestPending = now.Add(-recordLag)
	require.Equal(t, "RecordPending", cond(build(v1alpha1.DesiredRunning, slow), v1alpha1.ConditionRecorded).Reason)

	unloaded := buildStatus(statusInput{Desired: v1alpha1.DesiredRunning, LoadProblem: "dial tcp: connection refused", Now: now,
		Previous: v1alpha1.BackgroundTaskStatus{Phase: v1alpha1.PhaseRunning}})
	require.Equal(t, metav1.ConditionFalse, cond(unloaded, v1alpha1.ConditionRecorded).Status)
	require.Equal(t, v1alpha1.PhaseRunning, unloaded.Phase, "what was shown stays until the record can be read")
}

// TestStatusShowsOnlyTheCommittedRecord: a phase, result, attempt or restart generation reaches
// the status only from the committed record, never from what is still queued.
func TestStatusShowsOnlyTheCommittedRecord(t *testing.T) {
	c := journal.Committed{Record: lifecycle.Record{Status: lifecycle.Running, Attempt: 1, Seq: 2, RestartGeneration: 0}, Backlog: 1}
	s := buildStatus(statusInput{Desired: v1alpha1.DesiredRunning, Committed: c, Tracked: true, Now: time.Now()})
	require.Equal(t, v1alpha1.PhaseRunning, s.Phase, "a Finished transition still queued is not shown")
	require.Nil(t, s.Result)
}

func TestCoalesceWait(t *testing.T) {
	s := &statusWriter{opts: Options{Settings: Settings{StatusCoalesceWindow: 100 * time.Millisecond}}}
	require.Equal(t, 70*time.Millisecond, s.coalesceWait("", v1alpha1.PhaseRunning, 30*time.Millisecond), "fresh task: wait")
	require.Zero(t, s.coalesceWait("", v1alpha1.PhaseFinished, 0), "finished at once: write at once")
	require.Zero(t, s.coalesceWait(v1alpha1.PhaseRunning, v1alpha1.PhasePaused, 0), "later phases are written at once")
	require.Zero(t, s.coalesceWait("", v1alpha1.PhaseRunning, time.Second), "window passed")
	require.Zero(t, (&statusWriter{}).coalesceWait("", v1alpha1.PhaseRunning, 0), "window off")
}

func TestProgressOnly(t *testing.T) {
	a := v1alpha1.BackgroundTaskStatus{Phase: v1alpha1.PhaseRunning, Progress: "1/10"}
	b := a
	b.Progress = "2/10"
	require.True(t, progressOnly(a, b))
	b.Phase = v1alpha1.PhasePaused
	require.False(t, progressOnly(a, b))
	require.False(t, progressOnly(a, a))
}

// TestAWaitingRunSaysWhatItWaitsFor: a run queued for memory or a slot says so in its Ready
// condition, with the runner's own words, instead of a generic "Pending, desired Running".
func TestAWaitingRunSaysWhatItWaitsFor(t *testing.T) {
	waiting := "waiting for memory: needs 16 MiB, 290 of 307 MiB reserved"
	st := buildStatus(statusInput{Generation: 1, Desired: v1alpha1.DesiredRunning, Tracked: true, Now: time.Now(),
		Committed: journal.Committed{Record: lifecycle.Record{Status: lifecycle.Pending, Attempt: 1, Seq: 2,
			Reason: lifecycle.ReasonQueued, Message: waiting}}})
	ready := findCondition(st.Conditions, v1alpha1.ConditionReady)
	require.Equal(t, metav1.ConditionFalse, ready.Status)
	require.Equal(t, lifecycle.ReasonQueued, ready.Reason)
	require.Equal(t, waiting, ready.Message)
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// TestStatusShowsWhenTheTaskStartsOrResumesByItself: spec.startAfter and spec.resumeAt show in
// status.scheduledTime (a printer column) and in Ready, and vanish once they passed.
func TestStatusShowsWhenTheTaskStartsOrResumesByItself(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	later := now.Add(2 * time.Hour)
	record := func(s lifecycle.Status, attempt int) journal.Committed {
		return journal.Committed{Record: lifecycle.Record{Status: s, Attempt: attempt, Seq: 2, Reason: "Created", Message: "created"}}
	}
	tests := []struct {
		name                 string
		desired              v1alpha1.DesiredState
		startAfter, resumeAt time.Time
		committed            journal.Committed
		scheduled            time.Time
		ready                metav1.ConditionStatus
		reason, message      string
	}{
		{name: "waiting for startAfter", desired: v1alpha1.DesiredRunning, startAfter: later, committed: record(lifecycle.Pending, 0),
			scheduled: later, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonScheduled, message: "starts at 2026-12-05T14:00:00Z"},
		{name: "startAfter passed: no longer scheduled", desired: v1alpha1.DesiredRunning, startAfter: now.Add(-time.Second), committed: record(lifecycle.Running, 1),
			ready: metav1.ConditionTrue, reason: "AsDesired"},
		{name: "paused until resumeAt", desired: v1alpha1.DesiredPaused, resumeAt: later, committed: record(lifecycle.Paused, 1),
			scheduled: later, ready: metav1.ConditionTrue, reason: "AsDesired", message: "runs by itself from 2026-12-05T14:00:00Z"},
		{name: "created Paused with a resumeAt", desired: v1alpha1.DesiredPaused, resumeAt: later, committed: record(lifecycle.Pending, 0),
			scheduled: later, ready: metav1.ConditionTrue, reason: "AsDesired", message: "runs by itself from"},
		{name: "resumeAt then a later startAfter: the later", desired: v1alpha1.DesiredPaused, resumeAt: now.Add(time.Hour), startAfter: later,
			committed: record(lifecycle.Pending, 0), scheduled: later, ready: metav1.ConditionTrue, reason: "AsDesired"},
		{name: "resumed by resumeAt while spec says Paused", desired: v1alpha1.DesiredPaused, resumeAt: now.Add(-time.Minute), committed: record(lifecycle.Running, 1),
			ready: metav1.ConditionTrue, reason: v1alpha1.ReasonResumedByResumeAt, message: "spec.state still says Paused"},
		{name: "resumeAt passed, the resume not yet recorded", desired: v1alpha1.DesiredPaused, resumeAt: now.Add(-time.Second), committed: record(lifecycle.Paused, 1),
			ready: metav1.ConditionFalse, reason: "Converging", message: "Paused, desired Running"},
		{name: "resumeAt means nothing to a stopped task", desired: v1alpha1.DesiredPaused, resumeAt: later, committed: record(lifecycle.Stopped, 1),
			ready: metav1.ConditionFalse, reason: "Converging"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := buildStatus(statusInput{Generation: 1, Desired: tc.desired, StartAfter: tc.startAfter, ResumeAt: tc.resumeAt,
				Tracked: true, Committed: tc.committed, Now: now})
			if tc.scheduled.IsZero() {
				require.Nil(t, st.ScheduledTime)
			} else {
				require.NotNil(t, st.ScheduledTime)
				require.True(t, tc.scheduled.Equal(st.ScheduledTime.Time), "scheduledTime %s", st.ScheduledTime)
			}
			ready := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
			require.NotNil(t, ready)
			require.Equal(t, tc.ready, ready.Status, ready.Message)
			require.Equal(t, tc.reason, ready.Reason, ready.Message)
			require.Contains(t, ready.Message, tc.message)
		})
	}
}
