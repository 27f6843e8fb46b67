package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
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
		State: TaskState{
			Status: store.StatusRunning, Attempt: 2, Reason: "Started", Progress: "3/10",
			StartTime: &start, LastRunTime: &start, ObservedRestartGeneration: 1,
		},
	}
	first := buildStatus(in)
	require.Equal(t, v1alpha1.PhaseRunning, first.Phase)
	require.Equal(t, int32(2), first.Attempt)
	require.Equal(t, int64(3), first.ObservedGeneration)
	require.Equal(t, int64(1), first.ObservedRestartGeneration)
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
	cond := func(s v1alpha1.BackgroundTaskStatus, typ string) metav1.Condition {
		for _, c := range s.Conditions {
			if c.Type == typ {
				return c
			}
		}
		t.Fatalf("no %s condition", typ)
		return metav1.Condition{}
	}
	paused := buildStatus(statusInput{Desired: v1alpha1.DesiredPaused, State: TaskState{Status: store.StatusPaused, Attempt: 1}})
	require.Equal(t, metav1.ConditionTrue, cond(paused, v1alpha1.ConditionReady).Status)
	require.Equal(t, metav1.ConditionFalse, cond(paused, v1alpha1.ConditionProgressing).Status)

	converging := buildStatus(statusInput{Desired: v1alpha1.DesiredPaused, State: TaskState{Status: store.StatusRunning, Attempt: 1}})
	require.Equal(t, metav1.ConditionFalse, cond(converging, v1alpha1.ConditionReady).Status)
	require.Equal(t, "Converging", cond(converging, v1alpha1.ConditionReady).Reason)

	failed := buildStatus(statusInput{Desired: v1alpha1.DesiredRunning, State: TaskState{Status: store.StatusFailed, Reason: v1alpha1.ReasonDeadlineExceeded, Message: "too slow"}})
	require.Equal(t, v1alpha1.ReasonDeadlineExceeded, cond(failed, v1alpha1.ConditionReady).Reason)
	require.Equal(t, metav1.ConditionTrue, cond(failed, v1alpha1.ConditionDegraded).Status)

	backlog := buildStatus(statusInput{Desired: v1alpha1.DesiredRunning, State: TaskState{Status: store.StatusRunning, Backlog: 3, WriteError: "connection refused"}})
	rec := cond(backlog, v1alpha1.ConditionRecorded)
	require.Equal(t, metav1.ConditionFalse, rec.Status)
	require.Equal(t, ReasonDatabaseBacklog, rec.Reason)
	require.Contains(t, rec.Message, "3 write(s) waiting")

	unloaded := buildStatus(statusInput{Desired: v1alpha1.DesiredRunning, DatabaseProblem: "dial tcp: connection refused"})
	require.Equal(t, metav1.ConditionFalse, cond(unloaded, v1alpha1.ConditionRecorded).Status)
}
