package main

import (
	"context"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/membership"
)

// takeoverResult is scenario 5b: the leader is SIGKILLed while a warm standby runs.
type takeoverResult struct {
	n          int
	lease      time.Duration // --leader-elect-lease-duration of both replicas
	leader     time.Duration // kill -> the standby holds the leader Lease
	allRunning time.Duration // kill -> every task resumed by the standby (RUNNING -> RUNNING, owner bench-b)
	afterLease time.Duration // allRunning - lease: what the takeover costs beyond the wait it must do
	resumed    int
}

// standbyIdentity is the second replica of the takeover scenario.
const standbyIdentity = "bench-b"

// runTakeover runs n long tasks on a leader with a standby replica beside it (both with the
// production lease settings), SIGKILLs the leader and measures until the standby has resumed
// every task. The standby's informer caches are warm (it watched everything while waiting), so
// what remains after the dead replica's Leases expire is claiming the rows and starting the runs.
func runTakeover(ctx context.Context, e *env, n int) (*takeoverResult, error) {
	res := &takeoverResult{n: n, lease: membership.DefaultLeaseDuration}
	st, err := e.newStage(ctx, fmt.Sprintf("takeover-%d", n), n+16)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	standbySpec := st.opSpec
	standbySpec.identity = standbyIdentity
	standby, err := startOperator(ctx, standbySpec)
	if err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	defer func() { _ = standby.stop() }()
	const ns = benchNamespace
	w, stopWatch := st.watchPhases(ctx, ns)
	defer stopWatch()

	params := fmt.Sprintf(`{"from":100000,"interval":%q,"checkpointEvery":1}`, e.opts.crashStep)
	spec := func(int) taskSpec {
		return taskSpec{taskName: "countdown", params: params, state: v1alpha1.DesiredRunning}
	}
	if err := createTasks(ctx, st.cp.client, ns, "t", n, e.opts.workers, spec); err != nil {
		return nil, err
	}
	if err := waitAll(ctx, st, w, ns, "takeover: start", n, v1alpha1.PhaseRunning, "RUNNING"); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 2*time.Second)
	holder, err := leaseHolder(ctx, st.cp.client)
	if err != nil {
		return nil, err
	}
	killAt := time.Now()
	if err := st.op.kill(); err != nil {
		return nil, err
	}
	st.op = nil
	var leaderAt time.Time
	err = waitFor(ctx, "takeover: resume", 5*time.Minute, func() (bool, string, error) {
		if leaderAt.IsZero() {
			if h, err := leaseHolder(ctx, st.cp.client); err == nil && h != holder && h != "" {
				leaderAt = time.Now()
			}
		}
		var k int
		err := st.pool.QueryRow(ctx, `/*bench*/ SELECT count(*) FROM background_tasks
WHERE namespace = $1 AND status = 'RUNNING' AND owner = $2`, ns, standbyIdentity).Scan(&k)
		if err != nil {
			return false, "", fmt.Errorf("count resumed: %w", err)
		}
		res.resumed = k
		return k == n, fmt.Sprintf("resumed by the standby %d/%d (leader: %v)", k, n, !leaderAt.IsZero()), nil
	})
	if err != nil {
		return res, err
	}
	done := time.Now()
	var last time.Time
	if err := st.pool.QueryRow(ctx, `/*bench*/ SELECT max(h.at) FROM background_task_transitions h JOIN background_tasks t ON t.uid = h.task_uid
WHERE t.namespace = $1 AND h.from_status = 'RUNNING' AND h.to_status = 'RUNNING' AND h.at > $2`, ns, killAt).Scan(&last); err == nil && last.Before(done) {
		done = last
	}
	res.allRunning = done.Sub(killAt)
	res.afterLease = res.allRunning - res.lease
	if !leaderAt.IsZero() {
		res.leader = leaderAt.Sub(killAt)
	}
	logf("takeover %d: standby led after %v, all resumed %v after the kill (lease %v)",
		n, res.leader.Round(time.Millisecond), res.allRunning.Round(time.Millisecond), res.lease)
	return res, nil
}
