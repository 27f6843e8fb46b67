package main

import (
	"fmt"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// checkHistory is invariant 2: every task's history has contiguous seq from 1, each step
// starts where the previous one ended, is a step of the operator's own lifecycle table (lifecycle.Legal), and the row is
// where its history ends.
func checkHistory(trans map[string][]transition, rows map[string]rowObs) result {
	r := result{id: "2", title: "history: contiguous seq from 1, a legal lifecycle path"}
	total := 0
	for uid, row := range rows {
		hs := trans[uid]
		total += len(hs)
		label := taskLabel(row.name, uid)
		if len(hs) == 0 {
			r.add("no history", example{task: label, what: "the row has no transitions"})
			continue
		}
		for k, h := range hs {
			want := int64(k + 1)
			if h.seq != want {
				r.add("seq gap", example{task: label, seq: h.seq, what: fmt.Sprintf("seq %d where %d was expected", h.seq, want)})
				break
			}
			if k == 0 {
				if h.from != "" || h.to != "PENDING" {
					r.add("bad first step", example{task: label, seq: 1, what: fmt.Sprintf("seq 1 is %s -> %s", orNull(h.from), h.to)})
				}
				continue
			}
			prev := hs[k-1]
			switch {
			case h.from != prev.to:
				r.add("broken chain", example{task: label, seq: h.seq, what: fmt.Sprintf(
					"from %s, but seq %d ended in %s", h.from, prev.seq, prev.to)})
			case h.attempt < prev.attempt || h.attempt > prev.attempt+1:
				r.add("attempt jump", example{task: label, seq: h.seq, what: fmt.Sprintf(
					"attempt %d after attempt %d (%s -> %s, %s)", h.attempt, prev.attempt, h.from, h.to, h.reason)})
			case !lifecycle.Legal(lifecycle.Status(h.from), lifecycle.Status(h.to), h.attempt > prev.attempt):
				kind := fmt.Sprintf("%s -> %s (%s) not in the documented lifecycle", h.from, h.to, attemptWord(h.attempt > prev.attempt))
				what := fmt.Sprintf("%s -> %s, attempt %d -> %d, reason %s", h.from, h.to, prev.attempt, h.attempt, h.reason)
				if h.message != "" {
					what += ": " + trim(h.message, 100)
				}
				r.add(kind, example{task: label, seq: h.seq, what: what})
			}
		}
		last := hs[len(hs)-1]
		if row.lastSeq != last.seq || row.status != last.to || row.attempt != last.attempt {
			r.add("row differs from its history", example{task: label, seq: last.seq, what: fmt.Sprintf(
				"row is %s attempt %d last_seq %d; history ends at seq %d, %s attempt %d", row.status, row.attempt, row.lastSeq, last.seq, last.to, last.attempt)})
		}
	}
	r.checked = fmt.Sprintf("%d tasks, %d transitions", len(rows), total)
	return r
}

func attemptWord(newAttempt bool) string {
	if newAttempt {
		return "new attempt"
	}
	return "same attempt"
}

func orNull(s string) string {
	if s == "" {
		return "NULL"
	}
	return s
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
