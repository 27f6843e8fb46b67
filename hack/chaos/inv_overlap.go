package main

import (
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/test/witness"
)

// checkNoDoubleRun is invariant 1: no two executions of the same task overlap in time. Two
// executions overlap when one starts before the other's busy interval ends (witness package
// comment); during names the fault, if any, in progress at that moment (its kind, and a phrase
// for the counter-example).
func checkNoDoubleRun(execs map[string][]witness.Execution, names map[string]string, during func(time.Time) (string, string)) result {
	r := result{id: "1", title: "no double run: no two executions of a task overlap"}
	n := 0
	for uid, es := range execs {
		n += len(es)
		for i := range es {
			for j := i + 1; j < len(es); j++ {
				a, b := es[i], es[j] // a started first
				busy := a.BusyUntil()
				if !b.Start.Before(busy) {
					continue
				}
				fault, phrase := during(b.Start)
				kind := "with no fault going on"
				if fault != "" {
					kind = "around " + fault
				}
				if a.Attempt != b.Attempt {
					kind += ", different attempts"
				}
				what := fmt.Sprintf("pid %d (attempt %d) was busy until %s, %s after pid %d (attempt %d) started at %s; %d of its steps came after that start",
					a.PID, a.Attempt, clock(busy), busy.Sub(b.Start).Round(time.Millisecond), b.PID, b.Attempt, clock(b.Start), marksAfter(a, b.Start))
				if a.Ended && a.Completed && a.End.After(b.Start) {
					what += ", and it completed after it"
				}
				r.add(kind, example{task: taskLabel(names[uid], uid), what: what + phrase})
			}
		}
	}
	r.checked = fmt.Sprintf("%d executions of %d witness tasks", n, len(execs))
	return r
}

func marksAfter(e witness.Execution, t time.Time) int {
	n := 0
	for _, m := range e.Marks {
		if m.At.After(t) {
			n++
		}
	}
	return n
}

// clock formats a time of day to the millisecond.
func clock(t time.Time) string { return t.Format("15:04:05.000") }
