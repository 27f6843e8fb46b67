package controllers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

func TestCoalesceWait(t *testing.T) {
	r := &BackgroundTaskReconciler{opts: ReconcilerOptions{StatusCoalesceWindow: 100 * time.Millisecond}}
	tests := []struct {
		name          string
		current, next v1alpha1.Phase
		age           time.Duration
		want          time.Duration
	}{
		{"a fresh run's Running waits out the window", "", v1alpha1.PhaseRunning, 30 * time.Millisecond, 70 * time.Millisecond},
		{"Pending to Running waits too", v1alpha1.PhasePending, v1alpha1.PhaseRunning, 0, 100 * time.Millisecond},
		{"after the window it is written", "", v1alpha1.PhaseRunning, 150 * time.Millisecond, 0},
		{"Finished is written at once", "", v1alpha1.PhaseFinished, 0, 0},
		{"Paused is written at once (pause latency)", v1alpha1.PhaseRunning, v1alpha1.PhasePaused, 0, 0},
		{"a resume is written at once", v1alpha1.PhasePaused, v1alpha1.PhaseRunning, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, r.coalesceWait(tc.current, tc.next, tc.age))
		})
	}
	off := &BackgroundTaskReconciler{}
	require.Zero(t, off.coalesceWait("", v1alpha1.PhaseRunning, 0), "window 0 turns coalescing off")
}

func TestProgressOnly(t *testing.T) {
	cur := v1alpha1.BackgroundTaskStatus{Phase: v1alpha1.PhaseRunning, Progress: "1/10", Attempt: 1}
	next := cur
	next.Progress = "2/10"
	require.True(t, progressOnly(cur, next))
	next.Phase = v1alpha1.PhasePaused
	require.False(t, progressOnly(cur, next), "a phase change is never held back by the progress budget")
	require.False(t, progressOnly(cur, cur))
}
