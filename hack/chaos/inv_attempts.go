package main

import (
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/witness"
)

// attemptInput is what invariant 5 needs about one task.
type attemptInput struct {
	label      string
	hist       []transition
	intents    []intent // the driver's spec changes, in order
	maxRetries int
	cr         *crObs // nil when the driver deleted the task
	execs      []witness.Execution
}

// checkAttempts is invariant 5: restarts are neither lost nor repeated. Every new attempt in a
// task's history is explained by exactly one cause — its first run, a retry of a failure
// (at most maxRetries in a row), or a restartGeneration bump or a Stopped -> Running change the
// driver made before it (changes made before the operator acted may be honoured together) — and
// every such change of a task that still exists led to a new attempt unless its spec ends
// Stopped. The witness never executed an attempt the history does not know.
func checkAttempts(tasks []attemptInput) result {
	r := result{id: "5", title: "attempts match restartGeneration bumps, stops and retries"}
	attempts := 0
	for _, t := range tasks {
		attempts += checkTaskAttempts(&r, t)
	}
	r.checked = fmt.Sprintf("%d tasks, %d attempts", len(tasks), attempts)
	return r
}

func checkTaskAttempts(r *result, t attemptInput) int {
	asks := attemptAsks(t) // restarts and starts after a stop, not yet honoured
	recorded := map[int]bool{}
	first, retries := true, 0
	for k, h := range t.hist {
		recorded[h.attempt] = true
		if k == 0 || h.attempt <= t.hist[k-1].attempt {
			continue
		}
		isRetry := h.from == "FAILED" && h.to == "PENDING" && h.reason == "RetryScheduled"
		// Changes sent before this transition are what it may honour (100 ms of slack for the
		// two clocks, both this machine's).
		n := 0
		for n < len(asks) && !asks[n].at.After(h.at.Add(100*time.Millisecond)) {
			n++
		}
		switch {
		case isRetry:
			retries++
			if retries > t.maxRetries {
				r.add("retried more than maxRetries", example{task: t.label, seq: h.seq, what: fmt.Sprintf(
					"retry %d of a task with maxRetries %d (attempt %d)", retries, t.maxRetries, h.attempt)})
			}
			continue
		case first:
			first = false
		case n == 0:
			r.add("new attempt nobody asked for", example{task: t.label, seq: h.seq, what: fmt.Sprintf(
				"attempt %d started (%s -> %s, %s) with no restart, start or retry asking for it", h.attempt, h.from, h.to, h.reason)})
		}
		asks, retries = asks[n:], 0
	}
	if t.cr != nil {
		checkLost(r, t, asks, retries)
	}
	for _, e := range t.execs {
		if !recorded[e.Attempt] {
			r.add("executed an unrecorded attempt", example{task: t.label, what: fmt.Sprintf(
				"pid %d executed attempt %d (started %s, %d steps), which the history never recorded", e.PID, e.Attempt, clock(e.Start), len(e.Marks))})
			break
		}
	}
	if len(t.hist) == 0 {
		return 0
	}
	return t.hist[len(t.hist)-1].attempt
}

// attemptAsks are the driver's changes that ask for a new attempt: every restartGeneration bump,
// and every Stopped -> Running change whose stop the operator observed (a transition to STOPPED
// after the stop was sent and before the next stop). A stop undone before the operator saw it
// asks for nothing: the spec never stopped being Running as far as the operator could know.
func attemptAsks(t attemptInput) []intent {
	var asks []intent
	var lastStop time.Time
	for i, in := range t.intents {
		switch in.kind {
		case actStop:
			lastStop = in.at
		case actRestart:
			asks = append(asks, in)
		case actStart:
			until := time.Time{}
			for _, later := range t.intents[i+1:] {
				if later.kind == actStop {
					until = later.at
					break
				}
			}
			for _, h := range t.hist {
				if h.to == "STOPPED" && !h.at.Before(lastStop) && (until.IsZero() || h.at.Before(until)) {
					asks = append(asks, in)
					break
				}
			}
		case actPause, actResume, actDelete, actCreate:
		}
	}
	return asks
}

// checkLost reports restarts and retries that never happened, for a task that still exists.
func checkLost(r *result, t attemptInput, unhonoured []intent, retries int) {
	cr := t.cr
	if cr.observedRestartGen != cr.restartGeneration {
		r.add("restart never observed", example{task: t.label, what: fmt.Sprintf(
			"spec.restartGeneration %d, status.observedRestartGeneration %d", cr.restartGeneration, cr.observedRestartGen)})
	}
	if len(unhonoured) > 0 && cr.state != v1alpha1.DesiredStopped {
		in := unhonoured[0]
		r.add("restart lost", example{task: t.label, what: fmt.Sprintf(
			"%s sent at %s (generation %d, state %s) never started a new attempt%s", in.kind, clock(in.at), in.generation, in.state, lastStep(t.hist))})
	}
	if len(t.hist) == 0 {
		return
	}
	last := t.hist[len(t.hist)-1]
	if last.to == "FAILED" && cr.state == v1alpha1.DesiredRunning && retries < t.maxRetries &&
		last.reason != lifecycle.ReasonUnknownTaskType && last.reason != lifecycle.ReasonInvalidParams {
		r.add("retry lost", example{task: t.label, seq: last.seq, what: fmt.Sprintf(
			"failed (%s) after %d of %d retries and was never retried", last.reason, retries, t.maxRetries)})
	}
}
