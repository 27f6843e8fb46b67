package main

import (
	"fmt"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// checkNotStuck is the first half of invariant 4, after the settle wait: every task whose spec
// says Running reached Finished or Failed (Stopped would contradict its spec), every task whose
// spec says Stopped is in a terminal phase, and no deletion hangs.
func checkNotStuck(o observation) result {
	r := result{id: "4", title: "nothing stuck: spec Running ends terminal; deleted tasks soft-deleted, history kept"}
	running := 0
	for uid, cr := range o.crs {
		label := taskLabel(cr.name, uid)
		row := o.rows[uid]
		where := fmt.Sprintf("phase %s, row %s attempt %d%s", orNone(string(cr.phase)), orNone(row.status), row.attempt, lastStep(o.trans[uid]))
		switch {
		case cr.deleting:
			r.add("deletion hangs", example{task: label, what: "deleted but still present: " + where})
		case cr.state == v1alpha1.DesiredRunning:
			running++
			if cr.phase != v1alpha1.PhaseFinished && cr.phase != v1alpha1.PhaseFailed {
				r.add("spec Running, not finished", example{task: label, what: where})
			} else if row.status != phaseStatus(cr.phase) {
				r.add("spec Running, row not finished", example{task: label, what: where})
			}
		case cr.state == v1alpha1.DesiredStopped:
			if !cr.phase.Terminal() {
				r.add("spec Stopped, still active", example{task: label, what: where})
			}
		case cr.state == v1alpha1.DesiredPaused:
		}
	}
	r.checked = fmt.Sprintf("%d tasks (%d with spec Running)", len(o.crs), running)
	return r
}

// deletedTask is a task the driver deleted.
type deletedTask struct {
	name string
	// seen: it had a status when it was deleted, so the operator had recorded it.
	seen bool
}

// checkDeleted is the second half of invariant 4: every deleted task's row is marked deleted
// and keeps its whole history. deleted are the tasks the driver deleted (all of them, at the
// end of the run); o is read once the deletions are done. A task created and deleted before
// any operator saw it (during an API server restart) has no row, and needs none, unless the
// witness saw it run.
func checkDeleted(r *result, o observation, deleted map[string]deletedTask) {
	for uid, d := range deleted {
		label := taskLabel(d.name, uid)
		if _, still := o.crs[uid]; still {
			continue // reported by checkNotStuck's "deletion hangs", or still finishing
		}
		row, ok := o.rows[uid]
		switch {
		case !ok && !d.seen && len(o.execs[uid]) == 0:
		case !ok:
			r.add("deleted, no row", example{task: label, what: fmt.Sprintf(
				"no row in background_tasks, though it had a status or ran (%d executions)", len(o.execs[uid]))})
		case !row.deleted:
			r.add("deleted, row not marked deleted", example{task: label, what: fmt.Sprintf(
				"BackgroundTask gone, row still live: %s attempt %d%s", row.status, row.attempt, lastStep(o.trans[uid]))})
		case int64(len(o.trans[uid])) != row.lastSeq || row.lastSeq == 0:
			r.add("deleted, history incomplete", example{task: label, what: fmt.Sprintf(
				"%d transitions kept, last_seq %d", len(o.trans[uid]), row.lastSeq)})
		}
	}
	r.checked += fmt.Sprintf("; %d deleted tasks", len(deleted))
}

// lastStep describes the last transition of a history.
func lastStep(hs []transition) string {
	if len(hs) == 0 {
		return ", no history"
	}
	h := hs[len(hs)-1]
	return fmt.Sprintf(", last transition seq %d %s -> %s (%s) at %s", h.seq, orNull(h.from), h.to, h.reason, clock(h.at))
}
