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
//
// One overlap is the at-least-once boundary, not a double run, as for an item (invariant 10):
// an execution whose process was frozen (SIGSTOP) after its last step and before the other
// started, that did no step after that start and only completed, on waking. Its last pause
// point came before the freeze (after it, its lease had lapsed and every pause point fails), so
// the completion was decided then; its work was all done before the other began. frozen
// reports whether process pid was frozen at some time in [from, to].
func checkNoDoubleRun(execs map[string][]witness.Execution, names map[string]string, during func(time.Time) (string, string),
	frozen func(pid int, from, to time.Time) bool) result {
	r := result{id: "1", title: "no double run: no two executions of a task overlap"}
	n, tolerated := 0, 0
	for uid, es := range execs {
		n += len(es)
		for i := range es {
			for j := i + 1; j < len(es); j++ {
				a, b := es[i], es[j] // a started first
				busy := a.BusyUntil()
				if !b.Start.Before(busy) {
					continue
				}
				if a.Ended && a.Completed && marksAfter(a, b.Start) == 0 && frozen(a.PID, lastWork(a), b.Start) {
					tolerated++
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
	if tolerated > 0 {
		r.checked += fmt.Sprintf("; %d completions by a process frozen after its last step (at-least-once)", tolerated)
	}
	return r
}

// lastWork is when e last began a unit of work: its last mark, else its start.
func lastWork(e witness.Execution) time.Time {
	if len(e.Marks) == 0 {
		return e.Start
	}
	last := e.Start
	for _, m := range e.Marks {
		if m.At.After(last) {
			last = m.At
		}
	}
	return last
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
