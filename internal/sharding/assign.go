package sharding

import "fmt"

const (
	// LabelShard names the replica (its --identity) a BackgroundTask is assigned to. Each
	// replica's cache watches only the tasks with its own name here. Written by the sharder;
	// removed by the replica once it drained the task.
	LabelShard = "tasks.taskpilot.dev/shard"
	// LabelDrain ("true") asks the replica named in LabelShard to hand the task over: stop its
	// run without recording anything, write what it queued, release the row, then remove both
	// labels. Written by the sharder.
	LabelDrain = "tasks.taskpilot.dev/drain"
)

// Labels is the assignment part of a task's labels.
type Labels struct {
	Shard    string
	Draining bool
}

// LabelsOf reads the assignment from an object's labels.
func LabelsOf(labels map[string]string) Labels {
	return Labels{Shard: labels[LabelShard], Draining: labels[LabelDrain] == "true"}
}

// Move is what the sharder does about one task: nothing, or write Want as its labels.
type Move struct {
	Patch bool
	Want  Labels
	Why   string
}

// Next is the sharder's policy for one task, as a pure function: where the ring wants the task
// (wanted, "" when no replica is live), where its labels say it is, and whether that replica is
// live. A task moves from a live replica only through a drain; from a gone one directly (it can
// no longer drain, and its row stays fenced by its owner's epoch until others see it gone).
func Next(current Labels, wanted string, live func(string) bool) Move {
	cur := current.Shard
	switch {
	case wanted == "":
		return Move{Why: "no live replica"}
	case cur == "":
		return Move{Patch: true, Want: Labels{Shard: wanted}, Why: "assigned to " + wanted}
	case cur == wanted && current.Draining:
		return Move{Patch: true, Want: Labels{Shard: wanted}, Why: "drain called off: " + wanted + " keeps it"}
	case cur == wanted:
		return Move{Why: "in place"}
	case !live(cur):
		return Move{Patch: true, Want: Labels{Shard: wanted}, Why: fmt.Sprintf("moved from %s, which is gone, to %s", cur, wanted)}
	case !current.Draining:
		return Move{Patch: true, Want: Labels{Shard: cur, Draining: true}, Why: fmt.Sprintf("moving to %s: %s drains it first", wanted, cur)}
	}
	return Move{Why: fmt.Sprintf("waiting for %s to drain it (then %s)", cur, wanted)}
}
