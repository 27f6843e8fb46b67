package main

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	// The breakdown, from the kill: the dead leader's last Lease renewal (negative: before the
	// kill) and when its row expired, by the database's clock; the first and last run the
	// standby resumed. Its Lease is gone lease after the renewal; the tasks may be claimed
	// once both are gone.
	lastRenewal, rowExpired, firstResumed time.Duration
}

// takeoverBreakdown reads when the killed replica's membership ends by each backend, and when
// the first task resumed, relative to the kill.
func takeoverBreakdown(ctx context.Context, st *stage, killed string, killAt time.Time) (lastRenewal, rowExpired, firstResumed time.Duration) {
	var l coordinationv1.Lease
	if err := st.cp.client.Get(ctx, client.ObjectKey{Namespace: "default", Name: membership.LeaseName(killed)}, &l); err == nil && l.Spec.RenewTime != nil {
		lastRenewal = l.Spec.RenewTime.Sub(killAt)
	}
	var expires, first *time.Time
	_ = st.pool.QueryRow(ctx, `/*bench*/ SELECT expires_at FROM taskpilot_members WHERE identity = $1 ORDER BY epoch DESC LIMIT 1`,
		killed).Scan(&expires)
	if expires != nil {
		rowExpired = expires.Sub(killAt)
	}
	_ = st.pool.QueryRow(ctx, `/*bench*/ SELECT min(h.at) FROM background_task_transitions h JOIN background_tasks t ON t.uid = h.task_uid
WHERE t.namespace = $1 AND h.from_status = 'RUNNING' AND h.to_status = 'RUNNING' AND h.at > $2`, benchNamespace, killAt).Scan(&first)
	if first != nil {
		firstResumed = first.Sub(killAt)
	}
	return lastRenewal, rowExpired, firstResumed
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
	killed := st.opSpec.identity
	leaderAt, err := waitResumed(ctx, st, "takeover: resume by the standby", killAt, n, &res.resumed, `/*bench*/ SELECT count(*) FROM background_tasks
WHERE namespace = $1 AND updated_at > $2 AND status = 'RUNNING' AND owner = $3`, standbyIdentity)
	if err != nil {
		return res, err
	}
	res.allRunning = lastResumed(ctx, st, ns, killAt).Sub(killAt)
	res.afterLease = res.allRunning - res.lease
	res.lastRenewal, res.rowExpired, res.firstResumed = takeoverBreakdown(ctx, st, killed, killAt)
	if !leaderAt.IsZero() {
		res.leader = leaderAt.Sub(killAt)
	}
	logf("takeover %d: last renewal %v, Lease gone %v, row expired %v, standby led %v, first resumed %v, all resumed %v after the kill (lease %v)",
		n, res.lastRenewal.Round(time.Millisecond), (res.lastRenewal + res.lease).Round(time.Millisecond), res.rowExpired.Round(time.Millisecond),
		res.leader.Round(time.Millisecond), res.firstResumed.Round(time.Millisecond), res.allRunning.Round(time.Millisecond), res.lease)
	return res, nil
}
