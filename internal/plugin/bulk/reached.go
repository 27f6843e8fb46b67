package bulk

import (
	"fmt"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// before is what a task looked like when the verb was applied: what waiting compares with.
type before struct {
	Phase   v1alpha1.Phase
	Attempt int32
	// Generation is metadata.generation after the patch: status must reflect at least it.
	Generation int64
	// RestartGeneration is spec.restartGeneration after the patch.
	RestartGeneration int64
}

// reached reports whether t shows the effect of verb applied at b, and says how it ended when
// that is not the plain target phase (a task that finished meanwhile, a restart that waits
// for spec.state Running). Phases written before the operator saw the change do not count.
func reached(verb Verb, b before, t *v1alpha1.BackgroundTask) (bool, string) {
	st := t.Status
	if st.ObservedGeneration < b.Generation {
		return false, ""
	}
	phase := st.Phase
	switch verb {
	case Pause:
		switch {
		case phase == v1alpha1.PhasePaused:
			return true, ""
		case phase == v1alpha1.PhasePending:
			return true, "Pending: not started, and it will not start while Paused"
		case phase.Terminal():
			return true, fmt.Sprintf("%s: nothing to pause", phase)
		}
	case Resume:
		switch {
		case phase == v1alpha1.PhaseRunning:
			return true, ""
		case b.Phase == v1alpha1.PhaseStopped && st.Attempt == b.Attempt:
			// A stopped task set Running starts a new attempt; Stopped is still the old one.
		case phase.Terminal():
			return true, fmt.Sprintf("%s meanwhile (attempt %d)", phase, st.Attempt)
		}
	case Stop:
		switch phase {
		case v1alpha1.PhaseStopped:
			return true, ""
		case v1alpha1.PhaseFinished, v1alpha1.PhaseFailed:
			return true, fmt.Sprintf("%s before it could be stopped", phase)
		case v1alpha1.PhasePending, v1alpha1.PhaseRunning, v1alpha1.PhasePaused:
		}
	case Restart, RetryFailed:
		return restarted(b, t)
	}
	return false, ""
}

// restarted: the restart was honoured and a new attempt is running (or already ended, or
// waits because spec.state is not Running).
func restarted(b before, t *v1alpha1.BackgroundTask) (bool, string) {
	st := t.Status
	if st.ObservedRestartGeneration < b.RestartGeneration {
		return false, ""
	}
	newAttempt := st.Attempt > b.Attempt
	switch {
	case newAttempt && st.Phase == v1alpha1.PhaseRunning:
		return true, fmt.Sprintf("attempt %d Running", st.Attempt)
	case newAttempt && st.Phase.Terminal():
		return true, fmt.Sprintf("attempt %d %s meanwhile", st.Attempt, st.Phase)
	case newAttempt && st.Phase == v1alpha1.PhasePending && specState(t) == v1alpha1.DesiredPaused:
		return true, fmt.Sprintf("attempt %d Pending until spec.state is Running", st.Attempt)
	case specState(t) == v1alpha1.DesiredStopped && st.Phase.Terminal():
		return true, "spec.state is Stopped: nothing to run"
	}
	return false, ""
}
