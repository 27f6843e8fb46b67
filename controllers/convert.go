package controllers

import (
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// statusFromRunner maps the runner's state names to the upper-case words of the SQL contract.
func statusFromRunner(s runner.State) store.Status {
	switch s {
	case runner.StatePending:
		return store.StatusPending
	case runner.StateRunning:
		return store.StatusRunning
	case runner.StatePaused:
		return store.StatusPaused
	case runner.StateFinished:
		return store.StatusFinished
	case runner.StateFailed:
		return store.StatusFailed
	case runner.StateStopped:
		return store.StatusStopped
	}
	return store.Status(s)
}

// phaseFromStatus maps a recorded status to the CR's phase.
func phaseFromStatus(s store.Status) v1alpha1.Phase {
	switch s {
	case store.StatusPending:
		return v1alpha1.PhasePending
	case store.StatusRunning:
		return v1alpha1.PhaseRunning
	case store.StatusPaused:
		return v1alpha1.PhasePaused
	case store.StatusFinished:
		return v1alpha1.PhaseFinished
	case store.StatusFailed:
		return v1alpha1.PhaseFailed
	case store.StatusStopped:
		return v1alpha1.PhaseStopped
	}
	return v1alpha1.Phase(s)
}

// desiredToStore maps spec.state to the desired_state column.
func desiredToStore(d v1alpha1.DesiredState) store.DesiredState {
	switch d {
	case v1alpha1.DesiredPaused:
		return store.DesiredPaused
	case v1alpha1.DesiredStopped:
		return store.DesiredStopped
	case v1alpha1.DesiredRunning:
		return store.DesiredRunning
	}
	return store.DesiredRunning
}
