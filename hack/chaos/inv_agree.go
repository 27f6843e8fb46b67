package main

import (
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/test/witness"
)

// activeWithin: an open execution of a live process that wrote a row this recently is doing
// work (witness steps are at most 1 s apart).
const activeWithin = 5 * time.Second

// commitWindow: a completion followed this soon by its process's death may have died before
// its Finished transition was committed. The run is then done again by the next owner, which is
// the at-least-once guarantee (README, docs/architecture.md), not a double run.
const commitWindow = 2 * time.Second

// disagreements returns, for every live task, why its CR phase, its row status and what the
// witness saw do not agree (invariant 3); tasks that agree are absent. alive holds the pids of
// operator processes running at the time of o; died holds when each ended process ended.
func disagreements(o observation, alive map[int]bool, died map[int]time.Time) map[string]string {
	out := map[string]string{}
	for uid, cr := range o.crs {
		if cr.deleting {
			continue
		}
		row, ok := o.rows[uid]
		switch {
		case !ok:
			out[uid] = "no row in background_tasks"
			continue
		case row.deleted:
			out[uid] = "row is marked deleted but the BackgroundTask exists"
			continue
		case phaseStatus(cr.phase) != row.status:
			out[uid] = fmt.Sprintf("CR phase %s (attempt %d), row %s (attempt %d)", orNone(string(cr.phase)), cr.attempt, row.status, row.attempt)
			continue
		}
		if cr.taskName != witness.TaskType {
			continue
		}
		if why := witnessDisagrees(row, o.execs[uid], alive, died, o.at); why != "" {
			out[uid] = fmt.Sprintf("row %s attempt %d, but %s", row.status, row.attempt, why)
		}
	}
	return out
}

// witnessDisagrees says what the witness saw that contradicts the row ("" : nothing).
func witnessDisagrees(row rowObs, es []witness.Execution, alive map[int]bool, died map[int]time.Time, now time.Time) string {
	var active []witness.Execution // open, in a live process, wrote recently
	completed, cutShort := 0, 0    // cutShort: completions whose process died within commitWindow
	for _, e := range es {
		if !e.Ended && alive[e.PID] && now.Sub(e.LastActivity()) < activeWithin {
			active = append(active, e)
		}
		if e.Ended && e.Completed && e.Attempt == row.attempt {
			completed++
			if d, ok := died[e.PID]; ok && !d.Before(e.End) && d.Sub(e.End) <= commitWindow {
				cutShort++
			}
		}
	}
	switch row.status {
	case "RUNNING":
		n := 0
		for _, e := range active {
			if e.Attempt == row.attempt {
				n++
			}
		}
		if n == 0 {
			return "no live execution of that attempt" + lastSeen(es)
		}
		if n > 1 {
			return fmt.Sprintf("%d live executions of that attempt", n)
		}
	case "FINISHED":
		// Exactly one completion was committed; any other must have been cut short by its
		// process's death before it could commit.
		if completed == 0 || completed-cutShort > 1 {
			return fmt.Sprintf("the witness saw attempt %d complete %d times%s", row.attempt, completed, lastSeen(es))
		}
		if len(active) > 0 {
			return fmt.Sprintf("pid %d is still executing attempt %d", active[0].PID, active[0].Attempt)
		}
	case "PAUSED":
		// Parked in Yield is fine (an open execution); doing steps after the pause is not.
		for _, e := range es {
			for _, m := range e.Marks {
				if m.At.After(row.lastAt.Add(500 * time.Millisecond)) {
					return fmt.Sprintf("pid %d did step %d at %s, after the pause at %s", e.PID, m.Step, clock(m.At), clock(row.lastAt))
				}
			}
		}
	default: // PENDING, STOPPED, FAILED: nothing may be executing
		if len(active) > 0 {
			return fmt.Sprintf("pid %d is executing attempt %d (last step at %s)", active[0].PID, active[0].Attempt, clock(active[0].LastActivity()))
		}
	}
	return ""
}

// lastSeen describes the latest execution, for counter-examples.
func lastSeen(es []witness.Execution) string {
	if len(es) == 0 {
		return " (the witness never saw it run)"
	}
	e := es[len(es)-1]
	end := "still open"
	if e.Ended {
		end = fmt.Sprintf("ended %s completed=%v %s", clock(e.End), e.Completed, trim(e.Detail, 60))
	}
	return fmt.Sprintf(" (latest execution: pid %d attempt %d, started %s, %d steps, %s)", e.PID, e.Attempt, clock(e.Start), len(e.Marks), end)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// checkAgreement is invariant 3, from two observations a moment apart: a task breaks it only
// if it disagrees in both (one read of three sources cannot be instantaneous).
func checkAgreement(first, second observation, firstAlive, secondAlive map[int]bool, died map[int]time.Time, lastFault time.Time) result {
	r := result{id: "3", title: "60 s after the last fault: CR phase == row status == what the witness saw"}
	d1, d2 := disagreements(first, firstAlive, died), disagreements(second, secondAlive, died)
	for uid, why := range d2 {
		if _, before := d1[uid]; !before {
			continue
		}
		name := second.crs[uid].name
		kind := "phase/row"
		if second.crs[uid].taskName == "witness" && phaseStatus(second.crs[uid].phase) == second.rows[uid].status {
			kind = "row/witness"
		}
		r.add(kind, example{task: taskLabel(name, uid), what: why})
	}
	r.checked = fmt.Sprintf("%d tasks, read %.0f s and %.0f s after the last fault recovered",
		len(second.crs), first.at.Sub(lastFault).Seconds(), second.at.Sub(lastFault).Seconds())
	return r
}
