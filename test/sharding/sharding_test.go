// Package sharding_test runs several operator replicas as separate processes with --sharding
// against a real kube-apiserver and PostgreSQL, and checks what the design promises with the
// witness task type (test/witness), which records every execution outside the operator's own
// record: each task runs on exactly one replica, the tasks are spread evenly, a killed replica's
// tasks resume on the others from their checkpoints, a joining replica takes about its share
// with each task drained before it runs elsewhere, and a frozen replica writes nothing after
// its tasks moved. Times are logged, not asserted (docs/benchmarks.md measures them).
package sharding_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/internal/sharding"
	"github.com/taskpilot/taskpilot/test/witness"
)

// lastExecution is the latest execution of a task.
func lastExecution(es []witness.Execution) witness.Execution { return es[len(es)-1] }

func TestThreeReplicasShareTheTasksAndSurviveAKill(t *testing.T) {
	w := newWorld(t)
	for _, r := range []string{"r-a", "r-b", "r-c"} {
		w.start(r)
	}
	w.waitRing(3)
	const n = 300
	names := w.createTasks(n, 150, time.Second)
	per, before := w.waitSettled(names, "r-a", "r-b", "r-c")
	t.Logf("%d tasks over 3 replicas: %v", n, per) // the spread is the ring's; docs/architecture.md says how much
	ring := sharding.NewRing([]string{"r-a", "r-b", "r-c"}, 0)
	for _, name := range names {
		require.Equal(t, ring.Assign(before[name].uid), before[name].shard, "%s runs where the ring puts it", name)
	}
	execs := w.executions()
	for _, name := range names {
		require.Len(t, execs[before[name].uid], 1, "%s runs on exactly one replica", name)
	}

	w.waitAdvanced(names, nil, 2) // a few steps and checkpoints
	victim := w.replicas["r-b"]
	killedAt := time.Now()
	require.NoError(t, victim.Kill())
	per, after := w.waitSettled(names, "r-a", "r-c")
	t.Logf("after r-b was killed: %v", per)

	execs = w.executions()
	w.requireNoDoubleRun(execs)
	w.requireContiguousHistories()
	var movedCount int
	var slowest time.Duration
	for _, name := range names {
		p, es := before[name], execs[before[name].uid]
		if p.shard != "r-b" {
			require.Equal(t, p.shard, after[name].shard, "%s did not belong to the killed replica and stayed where it was", name)
			require.Len(t, es, 1, "%s ran on one replica only", name)
			continue
		}
		movedCount++
		last := lastExecution(es)
		require.NotEqual(t, victim.PID(), last.PID, "%s runs elsewhere now", name)
		require.Equal(t, es[0].Attempt, last.Attempt, "%s resumed the same attempt", name)
		require.Positive(t, last.StartStep, "%s resumed from its checkpoint, not from scratch", name)
		slowest = max(slowest, last.Start.Sub(killedAt))
	}
	require.Positive(t, movedCount)
	t.Logf("the killed replica's %d tasks all ran again %.1fs after the kill (lease duration %s)", movedCount, slowest.Seconds(), leaseDuration)
}

func TestAJoiningReplicaTakesItsShareEachDrainedFirst(t *testing.T) {
	w := newWorld(t)
	w.start("r-a")
	w.start("r-b")
	w.waitRing(2)
	const n = 150
	names := w.createTasks(n, 150, time.Second)
	_, before := w.waitSettled(names, "r-a", "r-b")
	w.waitAdvanced(names, nil, 2)

	w.start("r-c")
	per, after := w.waitSettled(names, "r-a", "r-b", "r-c")
	t.Logf("after r-c joined: %v", per)
	execs := w.executions()
	w.requireNoDoubleRun(execs)
	var moved int
	for _, name := range names {
		if before[name].shard == after[name].shard {
			require.Len(t, execs[before[name].uid], 1, "%s stayed and kept running", name)
			continue
		}
		moved++
		require.Equal(t, "r-c", after[name].shard, "a task only moves to the replica that joined")
		es := execs[before[name].uid]
		require.Len(t, es, 2, "%s: one execution on its old replica, one on the new", name)
		old, cur := es[0], es[1]
		require.True(t, old.Ended && !old.Completed, "%s: its old execution was stopped", name)
		require.False(t, cur.Start.Before(old.End), "%s was drained (its old run ended) before it ran on r-c", name)
		require.Positive(t, cur.StartStep, "%s resumed from its checkpoint", name)
		require.Equal(t, old.Attempt, cur.Attempt)
	}
	share := float64(moved) / n
	t.Logf("%d of %d tasks (%.0f%%) moved to the new replica", moved, n, 100*share)
	// Exactly the tasks the ring gives the new replica move (how many is the ring's draw from
	// random UIDs, a third on average: not asserted, it would fail one run in a few hundred).
	ring := sharding.NewRing([]string{"r-a", "r-b", "r-c"}, 0)
	for _, name := range names {
		require.Equal(t, ring.Assign(before[name].uid), after[name].shard, "%s runs where the ring of three puts it", name)
	}

	// A replica that shuts down hands its tasks over at once: no lease to wait for.
	stoppedAt := time.Now()
	require.NoError(t, w.replicas["r-c"].Stop(30*time.Second))
	delete(w.replicas, "r-c")
	_, back := w.waitSettled(names, "r-a", "r-b")
	t.Logf("r-c's tasks ran elsewhere %.1fs after it was asked to stop", time.Since(stoppedAt).Seconds())
	execs = w.executions()
	w.requireNoDoubleRun(execs)
	w.requireContiguousHistories()
	for _, name := range names {
		if after[name].shard == "r-c" {
			require.NotEqual(t, "r-c", back[name].shard)
			require.Positive(t, lastExecution(execs[before[name].uid]).StartStep, "%s resumed from its checkpoint", name)
		}
	}
}

func TestAFrozenReplicaWritesNothingAfterItsTasksMoved(t *testing.T) {
	w := newWorld(t)
	for _, r := range []string{"r-a", "r-b", "r-c"} {
		w.start(r)
	}
	w.waitRing(3)
	const n = 90
	names := w.createTasks(n, 150, 500*time.Millisecond)
	_, before := w.waitSettled(names, "r-a", "r-b", "r-c")
	w.waitAdvanced(names, nil, 2)
	frozen := w.replicas["r-c"]
	var frozenEpoch int64
	for _, name := range names {
		if before[name].shard == "r-c" {
			frozenEpoch = before[name].epoch
		}
	}
	require.NotZero(t, frozenEpoch)

	// Where each history stood when the replica froze: a task may have moved between replicas
	// before (it reached r-c only after r-c joined), so only what comes after counts.
	seqAtFreeze := w.lastSeqs()
	freeze(t, frozen)
	_, after := w.waitSettled(names, "r-a", "r-b")
	w.waitAdvanced(names, w.checkpoints(), 2) // the new owners write a few steps and checkpoints
	thaw(t, frozen)
	select {
	case <-frozen.Exited():
		t.Logf("the woken replica exited: %v", frozen.ExitErr())
	case <-time.After(30 * time.Second):
		t.Fatal("the woken replica, whose membership expired, did not stop")
	}
	delete(w.replicas, "r-c") // it exited: it writes nothing more

	// After the freeze, once another owner recorded a transition of a task, nothing more was
	// recorded under the frozen epoch.
	for uid, hist := range w.epochsAfter(seqAtFreeze) {
		taken := false
		for _, epoch := range hist {
			taken = taken || epoch != frozenEpoch
			require.False(t, taken && epoch == frozenEpoch, "task %s: the frozen replica wrote a transition after its task moved (%v)", uid, hist)
		}
	}
	execs := w.executions()
	w.requireNoDoubleRun(execs)
	w.requireContiguousHistories()
	final := w.placements()
	for _, name := range names {
		if before[name].shard != "r-c" {
			continue
		}
		require.Equal(t, after[name].owner, final[name].owner, "%s stays with its new owner", name)
		require.NotEqual(t, frozenEpoch, final[name].epoch)
		for _, e := range execs[before[name].uid] {
			if e.PID == frozen.PID() {
				require.False(t, e.Ended && e.Completed, "%s: the frozen replica did not complete it", name)
			}
		}
	}
}
