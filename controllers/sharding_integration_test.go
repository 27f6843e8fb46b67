package controllers_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/sharding"
)

// shardOf is the replica a task's label assigns it to.
func (h *harness) shardOf(name string) string {
	return sharding.LabelsOf(h.get(name).Labels).Shard
}

// waitSpread waits until every task is labelled for one of replicas and its row is owned by
// that replica, and each replica has some, and returns the number of tasks per replica.
func (h *harness) waitSpread(names []string, replicas ...string) map[string]int {
	h.t.Helper()
	want := map[string]bool{}
	for _, r := range replicas {
		want[r] = true
	}
	var per map[string]int
	require.Eventually(h.t, func() bool {
		per = map[string]int{}
		owners := h.ownerByName()
		for _, n := range names {
			shard := h.shardOf(n)
			if !want[shard] || owners[n] != shard {
				return false
			}
			per[shard]++
		}
		return len(per) == len(replicas) // each has its share
	}, 2*waitTimeout, 100*time.Millisecond, "tasks not spread over %v: %v", replicas, per)
	return per
}

// ownerByName maps each live row's task name to its owner.
func (h *harness) ownerByName() map[string]string {
	h.t.Helper()
	rows, err := h.repo.ListLive(h.ctx)
	require.NoError(h.t, err)
	out := map[string]string{}
	for _, r := range rows {
		if o, ok := r.Owned(); ok {
			out[r.Name] = o.Name
		}
	}
	return out
}

// TestShardedReplicasShareTheTasks: with sharding, every replica runs tasks: each task is
// assigned to one replica (label), owned by it (row), and runs there only; a replica that
// joins takes about its share, each task drained by its old replica before it runs on the new
// one (resuming from its checkpoint, same attempt); a replica that shuts down hands its tasks
// to the others at once.
func TestShardedReplicasShareTheTasks(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{sharding: true, identity: "r-a"})
	h.startOperator(operatorConfig{sharding: true, identity: "r-b"})
	const n = 45
	var names, uids []string
	// The tasks outlast any test run, so none ends before the last count of RUNNING rows on a
	// slow machine; the test ends them by stopping the replicas.
	for i := range n {
		bt := h.create(fmt.Sprintf("t%02d", i), "steps", `{"steps":100000,"interval":"50ms"}`)
		names, uids = append(names, bt.Name), append(uids, string(bt.UID))
	}
	per := h.waitSpread(names, "r-a", "r-b")
	t.Logf("two replicas: %v", per)
	require.Positive(t, per["r-a"])
	require.Positive(t, per["r-b"])
	require.Eventually(t, func() bool { return h.countRows("RUNNING") == n }, waitTimeout, 50*time.Millisecond)

	third := h.startOperator(operatorConfig{sharding: true, identity: "r-c"})
	per = h.waitSpread(names, "r-a", "r-b", "r-c")
	t.Logf("three replicas: %v", per)
	require.Positive(t, per["r-c"], "the new replica took its share")
	require.Eventually(t, func() bool { return h.countRows("RUNNING") == n }, waitTimeout, 50*time.Millisecond)
	require.Empty(t, h.probes.doubles(), "a moved task ran in one place at a time")
	for i, uid := range uids {
		if h.shardOf(names[i]) != "r-c" {
			continue
		}
		hist := h.history(uid)
		require.Equal(t, "RUNNING>RUNNING@1", hist[len(hist)-1], "%s resumed its attempt on the new replica: %v", names[i], hist)
	}

	third.stop()
	per = h.waitSpread(names, "r-a", "r-b")
	t.Logf("after r-c stopped: %v", per)
	require.Eventually(t, func() bool { return h.countRows("RUNNING") == n }, waitTimeout, 50*time.Millisecond)
	require.Empty(t, h.probes.doubles())

	// The user's actions still reach the task wherever it runs.
	h.patchSpec(names[0], `{"state":"Paused"}`)
	h.waitPhase(names[0], v1alpha1.PhasePaused)
	h.patchSpec(names[0], `{"state":"Stopped"}`)
	h.waitRow(uids[0], lifecycle.Stopped)
	for _, uid := range uids {
		h.history(uid) // contiguous and legal
	}
}
