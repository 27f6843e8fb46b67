package main

import (
	"fmt"
	"sort"
	"strings"
)

// example is one counter-example of an invariant.
type example struct {
	task string // name (uid prefix)
	seq  int64  // the history row it is about (0: none)
	what string
}

// result is the verdict on one invariant.
type result struct {
	id, title string
	checked   string // what was checked, e.g. "1000 tasks, 4210 executions"
	broken    int    // number of counter-examples (tasks or pairs)
	examples  []example
	// kinds counts counter-examples by category, for invariants with several ways to fail.
	kinds   map[string]int
	skipped string // why it could not be checked ("" : it was)
	// notApplicable: the run's plan has nothing this invariant is about (no outage fault in a
	// quick run); skipped says so, and the run is not failed for it.
	notApplicable bool
}

// held reports whether the run may count the invariant as kept: checked and unbroken, or not
// applicable to its plan.
func (r *result) held() bool { return r.broken == 0 && (r.skipped == "" || r.notApplicable) }

func (r *result) verdict() string {
	switch {
	case r.notApplicable:
		return "not applicable"
	case r.skipped != "":
		return "not checked"
	case r.broken == 0:
		return "held"
	default:
		return "**BROKEN**"
	}
}

// maxExamples bounds the counter-examples kept per invariant.
const maxExamples = 8

// add records one counter-example of category kind.
func (r *result) add(kind string, ex example) {
	r.broken++
	if r.kinds == nil {
		r.kinds = map[string]int{}
	}
	r.kinds[kind]++
	// Keep the first example of every kind, then the first ones overall.
	if r.kinds[kind] == 1 || len(r.examples) < maxExamples/2 {
		if len(r.examples) < maxExamples*2 {
			r.examples = append(r.examples, ex)
		}
	}
}

// kindSummary is "3 × gap, 1 × chain" by decreasing count.
func (r *result) kindSummary() string {
	type kv struct {
		k string
		n int
	}
	var kvs []kv
	for k, n := range r.kinds {
		kvs = append(kvs, kv{k, n})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].n > kvs[j].n || (kvs[i].n == kvs[j].n && kvs[i].k < kvs[j].k) })
	var parts []string
	for _, p := range kvs {
		parts = append(parts, fmt.Sprintf("%d × %s", p.n, p.k))
	}
	return strings.Join(parts, "; ")
}

// taskLabel names a task for a report: its name and the start of its uid.
func taskLabel(name, uid string) string {
	if name == "" {
		name = "?"
	}
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return name + " (" + uid + ")"
}
