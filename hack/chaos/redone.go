package main

import (
	"time"

	"github.com/taskpilot/taskpilot/test/witness"
)

// redone is the work done more than once, from the witness. A step of an attempt marked again
// by an execution that started after the earlier one stopped being busy was redone because the
// checkpoint it resumed from was older than the work already done (lost with a crash, or never
// taken); one marked again by an execution that overlapped the earlier one was done twice at
// the same time (a double run, invariant 1).
type redone struct {
	steps          int // redone after a crash or failover
	seconds        float64
	tasks          int
	concurrent     int // steps done twice at once
	resumed        int // executions that continued an attempt another execution had started
	completedTwice int // attempts that completed more than once
}

func workRedone(execs map[string][]witness.Execution, interval map[string]time.Duration) redone {
	var out redone
	for uid, es := range execs {
		type key struct{ attempt, step int }
		doneBy := map[key]int{} // index in es of the first execution that did the step
		completed := map[int]int{}
		execsOf := map[int]int{}
		n := 0
		for i, e := range es { // in order of start
			execsOf[e.Attempt]++
			if execsOf[e.Attempt] > 1 {
				out.resumed++
			}
			for _, m := range e.Marks {
				k := key{e.Attempt, m.Step}
				first, seen := doneBy[k]
				switch {
				case !seen:
					doneBy[k] = i
				case first == i:
					// The same execution recorded the step twice (a witness table without
					// the unique key on marks): one step, done once.
				case e.Start.Before(es[first].BusyUntil()):
					out.concurrent++
				default:
					n++
				}
			}
			if e.Ended && e.Completed {
				completed[e.Attempt]++
			}
		}
		if n > 0 {
			out.tasks++
			out.steps += n
			out.seconds += float64(n) * interval[uid].Seconds()
		}
		for _, c := range completed {
			if c > 1 {
				out.completedTwice++
			}
		}
	}
	return out
}
