package controllers

import (
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/lifecycle"
)

// phaseOf maps a recorded status to the BackgroundTask's phase, in the one place they meet.
func phaseOf(s lifecycle.Status) v1alpha1.Phase {
	switch s {
	case lifecycle.Pending:
		return v1alpha1.PhasePending
	case lifecycle.Running:
		return v1alpha1.PhaseRunning
	case lifecycle.Paused:
		return v1alpha1.PhasePaused
	case lifecycle.Finished:
		return v1alpha1.PhaseFinished
	case lifecycle.Failed:
		return v1alpha1.PhaseFailed
	case lifecycle.Stopped:
		return v1alpha1.PhaseStopped
	}
	return v1alpha1.Phase(s)
}

// desiredOf maps spec.state to the desired_state column.
func desiredOf(d v1alpha1.DesiredState) lifecycle.Desired {
	switch d {
	case v1alpha1.DesiredPaused:
		return lifecycle.DesiredPaused
	case v1alpha1.DesiredStopped:
		return lifecycle.DesiredStopped
	case v1alpha1.DesiredRunning:
	}
	return lifecycle.DesiredRunning
}
