package main

import (
	"context"
	"fmt"
	"time"

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

	if err := startCountdowns(ctx, e, st, w, "t", n, "takeover: start"); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 2*time.Second)
	killAt := time.Now()
	if err := st.op.kill(); err != nil {
		return nil, err
	}
	st.op = nil
	leaderAt, err := waitResumed(ctx, st, "takeover: resume by the standby", killAt, n, &res.resumed, `/*bench*/ SELECT count(*) FROM background_tasks
WHERE namespace = $1 AND updated_at > $2 AND status = 'RUNNING' AND owner = $3`, standbyIdentity)
	if err != nil {
		return res, err
	}
	res.allRunning = lastResumed(ctx, st, ns, killAt).Sub(killAt)
	res.afterLease = res.allRunning - res.lease
	if !leaderAt.IsZero() {
		res.leader = leaderAt.Sub(killAt)
	}
	logf("takeover %d: standby led after %v, all resumed %v after the kill (lease %v)",
		n, res.leader.Round(time.Millisecond), res.allRunning.Round(time.Millisecond), res.lease)
	return res, nil
}
