package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/witness"
)

// isOutage: the fault takes a backend away, or slows it down, without stopping any replica;
// through it a replica keeps its tasks by the backend it still reaches.
func isOutage(k faultKind) bool {
	return k == faultPostgres || k == faultAPIServer || k == faultSlowLease
}

// outageAfter is how long after an outage's recovery invariant 7 still looks: what it could
// cause (a takeover, a hand-over) happens within a few retry periods. It is the gap kept
// before the next fault.
const outageAfter = minFaultGap

// runningWithin: an execution counts as running when the outage began if it did a step this
// little before (the longest witness step is 2 s; a paused run does none).
const runningWithin = 5 * time.Second

// checkOutagesStopNothing is invariant 7: a task running when an outage of the API server or
// of PostgreSQL (or a Lease slowdown) began, whose spec nobody changed from runningWithin
// before it until outageAfter after it recovered, went on in the execution it had: no other
// execution of it started meanwhile, and that one did not end other than by completing or by
// its own injected failure. changes are the times of the driver's spec changes by task uid.
func checkOutagesStopNothing(execs map[string][]witness.Execution, faults []faultRecord, changes map[string][]time.Time, names map[string]string) result {
	r := result{id: "7", title: "an outage of either backend stops, pauses or restarts no running task"}
	outages, tasks := 0, 0
	for _, f := range faults {
		if !isOutage(f.kind) || f.err != nil {
			continue
		}
		outages++
		from, until := f.injected, f.recovered.Add(outageAfter)
		for uid, es := range execs {
			if changedBetween(changes[uid], from.Add(-runningWithin), until) {
				continue
			}
			e, ok := runningAt(es, from)
			if !ok {
				continue
			}
			tasks++
			label := taskLabel(names[uid], uid)
			if e.Ended && e.End.Before(until) && !e.Completed && !ownEnd(e) {
				r.add(string(f.kind)+": stopped", example{task: label, what: fmt.Sprintf(
					"the execution of pid %d running when %s began (%s) ended at %s: %s", e.PID, f.kind, f.target, clock(e.End), e.Detail)})
				continue
			}
			for _, later := range es {
				if later.ID == e.ID || later.Start.Before(from) || !later.Start.Before(until) {
					continue
				}
				if later.Attempt > e.Attempt && e.Ended && ownEnd(e) {
					continue // its retry
				}
				r.add(string(f.kind)+": run again", example{task: label, what: fmt.Sprintf(
					"running in pid %d (attempt %d) when %s began (%s); pid %d started it again at %s (attempt %d, from step %d)",
					e.PID, e.Attempt, f.kind, f.target, later.PID, clock(later.Start), later.Attempt, later.StartStep)})
				break
			}
		}
	}
	if outages == 0 {
		r.skipped, r.notApplicable = "no outage fault in this run's plan", true
		return r
	}
	r.checked = fmt.Sprintf("%d task executions running across %d outages", tasks, outages)
	return r
}

// ownEnd: the execution ended by the task's own doing, which an outage does not excuse or
// cause: its planned failure, or its spec.timeout (the runner's deadline counts running time,
// which goes on through an outage).
func ownEnd(e witness.Execution) bool {
	return strings.HasPrefix(e.Detail, "injected failure") || strings.Contains(e.Detail, runner.ErrDeadlineExceeded.Error())
}

// runningAt returns the execution that did a step within runningWithin before t and had not
// ended by t.
func runningAt(es []witness.Execution, t time.Time) (witness.Execution, bool) {
	for _, e := range es {
		if !e.Start.Before(t) || (e.Ended && !e.End.After(t)) {
			continue
		}
		for _, m := range e.Marks {
			if !m.At.After(t) && t.Sub(m.At) <= runningWithin {
				return e, true
			}
		}
	}
	return witness.Execution{}, false
}

func changedBetween(ts []time.Time, from, until time.Time) bool {
	for _, t := range ts {
		if !t.Before(from) && t.Before(until) {
			return true
		}
	}
	return false
}
