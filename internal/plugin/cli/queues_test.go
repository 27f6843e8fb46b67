package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

func TestQueuePauseAndResumePatches(t *testing.T) {
	until := time.Date(2026, 12, 6, 14, 0, 0, 0, time.FixedZone("CET", 3600))
	require.JSONEq(t, `{"spec":{"paused":true,"pausedUntil":"2026-12-06T13:00:00Z","drain":"Pause"}}`, string(queuePausePatch(true, &until, true)))
	require.JSONEq(t, `{"spec":{"paused":true,"pausedUntil":null,"drain":null}}`, string(queuePausePatch(true, nil, false)))
	require.JSONEq(t, `{"spec":{"paused":false,"pausedUntil":null,"drain":null}}`, string(queuePausePatch(false, &until, true)),
		"a resume clears the time and the drain")

	now := time.Date(2026, 12, 6, 12, 0, 0, 500, time.UTC)
	got, err := parseUntil("90m", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 6, 13, 30, 0, 0, time.UTC), got)
	got, err = parseUntil("2026-12-06T14:00:00Z", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC), got)
	_, err = parseUntil("tomorrow", now)
	require.ErrorContains(t, err, "RFC 3339")
	_, err = parseUntil("-5m", now)
	require.Error(t, err)
}

func TestQueueTable(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	until := metav1.NewTime(now.Add(time.Hour))
	queues := []v1alpha1.TaskQueue{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reports"}, Spec: v1alpha1.TaskQueueSpec{Concurrency: 5},
			Status: v1alpha1.TaskQueueStatus{Running: 5, Pending: 37, OldestPendingSince: &metav1.Time{Time: now.Add(-3 * time.Minute)}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "imports"}, Spec: v1alpha1.TaskQueueSpec{Concurrency: 2, Paused: true, PausedUntil: &until},
			Status: v1alpha1.TaskQueueStatus{Paused: 1, Conditions: []metav1.Condition{{Type: v1alpha1.ConditionPaused, Status: metav1.ConditionTrue}}}},
	}
	var out bytes.Buffer
	require.NoError(t, printQueues(&out, queues, now))
	require.Equal(t, `NAMESPACE   NAME      CONCURRENCY   RUNNING   PENDING   PAUSED TASKS   STATE                               OLDEST WAIT
default     reports   5             5         37        0              admitting                           3m
default     imports   2             0         0         1              paused until 2026-12-06T13:00:00Z   -
`, out.String())
}
