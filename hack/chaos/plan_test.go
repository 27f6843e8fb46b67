package main

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanIsAFunctionOfTheSeed(t *testing.T) {
	a, b := makePlan(7, fullProfile()), makePlan(7, fullProfile())
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two different plans")
	}
	if c := makePlan(8, fullProfile()); reflect.DeepEqual(a.actions, c.actions) {
		t.Fatal("another seed gave the same actions")
	}
}

func TestPlanShape(t *testing.T) {
	for _, p := range []profile{fullProfile(), quickProfile()} {
		pl := makePlan(1, p)
		if len(pl.tasks) != p.tasks+1 || len(pl.faults) != len(p.faults) {
			t.Fatalf("%s: %d tasks (and the one with items), %d faults", p.name, len(pl.tasks), len(pl.faults))
		}
		items := pl.tasks[len(pl.tasks)-1]
		if items.items != itemsCount || items.createAt >= p.faultsFrom {
			t.Fatalf("%s: the task with items has %d items, created at %v", p.name, items.items, items.createAt)
		}
		kinds := map[faultKind]int{}
		last := time.Duration(0)
		for _, f := range pl.faults {
			kinds[f.kind]++
			if f.at < last || f.at < p.faultsFrom || f.at > faultDeadline(pl) {
				t.Fatalf("%s: fault %s at %v out of order or range", p.name, f.kind, f.at)
			}
			last = f.at
			if f.kind == faultStopLeader && f.hold <= leaseSeconds*time.Second {
				t.Fatalf("a frozen leader must be held past its lease, got %v", f.hold)
			}
		}
		for _, k := range p.faults {
			if kinds[k] == 0 {
				t.Fatalf("%s: fault %s missing", p.name, k)
			}
		}
		deleted := map[int]bool{}
		for i, a := range pl.actions {
			if i > 0 && a.at < pl.actions[i-1].at {
				t.Fatalf("%s: actions out of order at %d", p.name, i)
			}
			if deleted[a.task] {
				t.Fatalf("%s: action %s on task %d after its deletion", p.name, a.kind, a.task)
			}
			if a.kind == actDelete {
				deleted[a.task] = true
			}
			if a.at < pl.tasks[a.task].createAt {
				t.Fatalf("%s: action on task %d before it exists", p.name, a.task)
			}
		}
	}
}

// TestEveryPlannedFaultHasItsTime: each fault starts only after the one before has had its whole
// time and the gap after it, and the deadline leaves room for the last one: spacing faults evenly
// whatever they last would drop some without a word and cut outages short.
func TestEveryPlannedFaultHasItsTime(t *testing.T) {
	for _, p := range []profile{fullProfile(), quickProfile()} {
		for seed := uint64(1); seed <= 50; seed++ {
			pl := makePlan(seed, p)
			for i := 1; i < len(pl.faults); i++ {
				prev, f := pl.faults[i-1], pl.faults[i]
				if f.at < prev.at+prev.hold+gapAfter(prev.kind) {
					t.Fatalf("%s seed %d: %s at %v, before %s (at %v, hold %v) recovered and its gap passed", p.name, seed,
						f.kind, f.at, prev.kind, prev.at, prev.hold)
				}
			}
			if last := pl.faults[len(pl.faults)-1]; last.at+last.takes() > faultDeadline(pl) {
				t.Fatalf("%s seed %d: the last fault would be cut by the deadline", p.name, seed)
			}
		}
	}
}
