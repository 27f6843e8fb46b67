package main

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
)

// crashResult is scenario 5.
type crashResult struct {
	n           int
	interval    time.Duration
	ready       time.Duration // restart -> /readyz
	leader      time.Duration // restart -> Lease taken over (the dead holder's lease must expire)
	allRunning  time.Duration // restart -> every row has a RUNNING->RUNNING transition
	afterLeader time.Duration // Lease taken over -> every row resumed
	resumed     int
	ckptAge     dist // kill time - updated_at of the last durable checkpoint: work to redo
	regressed   int  // tasks whose checkpoint after the restart is below the one before
}

// leaseName is the operator's leader-election Lease (main.go).
const leaseName = "taskpilot.tasks.taskpilot.dev"

func runCrash(ctx context.Context, e *env, n int) (*crashResult, error) {
	res := &crashResult{n: n, interval: e.opts.crashStep}
	st, err := e.newStage(ctx, fmt.Sprintf("crash-%d", n), n+16)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	const ns = benchNamespace
	w, stopWatch := st.watchPhases(ctx, ns)
	defer stopWatch()

	if err := startCountdowns(ctx, e, st, w, "c", n, "crash: start"); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 3*e.opts.crashStep+2*time.Second) // every task has checkpointed a few times

	killAt := time.Now()
	if err := st.op.kill(); err != nil {
		return nil, err
	}
	st.op = nil
	before, err := checkpoints(ctx, st, ns)
	if err != nil {
		return nil, err
	}
	var ages []time.Duration
	for _, c := range before {
		ages = append(ages, killAt.Sub(c.updatedAt))
	}
	res.ckptAge = summarize(ages)

	restart := time.Now()
	if st.op, err = startOperator(ctx, st.opSpec); err != nil {
		return nil, err
	}
	res.ready = time.Since(restart)
	leaderAt, err := waitResumed(ctx, st, "crash: resume", killAt, n, &res.resumed, `/*bench*/ SELECT count(DISTINCT h.task_uid) FROM background_task_transitions h
JOIN background_tasks t ON t.uid = h.task_uid
WHERE t.namespace = $1 AND h.from_status = 'RUNNING' AND h.to_status = 'RUNNING' AND h.at > $2`)
	if err != nil {
		return res, err
	}
	done := lastResumed(ctx, st, ns, killAt)
	res.allRunning = done.Sub(restart)
	if !leaderAt.IsZero() {
		res.leader = leaderAt.Sub(restart)
		res.afterLeader = done.Sub(leaderAt)
	}
	sleepCtx(ctx, 2*e.opts.crashStep+time.Second)
	after, err := checkpoints(ctx, st, ns)
	if err != nil {
		return nil, err
	}
	for name, c := range before {
		if after[name].done < c.done {
			res.regressed++
		}
	}
	logf("crash %d: ready %v, lease %v, all resumed %v after restart; checkpoint age at kill p50 %v p99 %v max %v; regressed %d",
		n, res.ready.Round(time.Millisecond), res.leader.Round(time.Millisecond), res.allRunning.Round(time.Millisecond),
		res.ckptAge.p50.Round(time.Millisecond), res.ckptAge.p99.Round(time.Millisecond), res.ckptAge.max.Round(time.Millisecond), res.regressed)
	return res, nil
}

func leaseHolder(ctx context.Context, c client.Client) (string, error) {
	h, _, err := leaseAcquired(ctx, c)
	return h, err
}

// leaseAcquired reads the leader Lease: its holder and when that holder acquired it. A process
// that restarts under the same identity acquires it anew (a later acquire time), so a new
// leadership shows there even when the holder's name is the same.
func leaseAcquired(ctx context.Context, c client.Client) (holder string, acquired time.Time, err error) {
	var l coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: leaseName}, &l); err != nil {
		return "", time.Time{}, fmt.Errorf("get lease: %w", err)
	}
	if l.Spec.AcquireTime != nil {
		acquired = l.Spec.AcquireTime.Time
	}
	return controllers.LeaderIdentity(ptr.Deref(l.Spec.HolderIdentity, "")), acquired, nil
}

type checkpointRow struct {
	done      int
	updatedAt time.Time
}

// checkpoints reads each task's durable countdown checkpoint and when its row last changed.
func checkpoints(ctx context.Context, st *stage, ns string) (map[string]checkpointRow, error) {
	rows, err := st.pool.Query(ctx, `/*bench*/ SELECT name, COALESCE((checkpoint->>'done')::int, 0), updated_at
FROM background_tasks WHERE namespace = $1`, ns)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	out := map[string]checkpointRow{}
	for rows.Next() {
		var name string
		var c checkpointRow
		if err := rows.Scan(&name, &c.done, &c.updatedAt); err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, rows.Err()
}

// startCountdowns creates n long countdown tasks that checkpoint at every step (--crash-interval)
// and waits until they all run: the load of the crash and takeover scenarios.
func startCountdowns(ctx context.Context, e *env, st *stage, w *phaseWatcher, prefix string, n int, label string) error {
	params := fmt.Sprintf(`{"from":100000,"interval":%q,"checkpointEvery":1}`, e.opts.crashStep)
	spec := func(int) taskSpec {
		return taskSpec{taskName: "countdown", params: params, state: v1alpha1.DesiredRunning}
	}
	if err := createTasks(ctx, st.cp.client, benchNamespace, prefix, n, e.opts.workers, spec); err != nil {
		return err
	}
	return waitAll(ctx, st, w, benchNamespace, label, n, v1alpha1.PhaseRunning, "RUNNING")
}

// waitResumed waits until count (a query over the bench namespace, $1, and the kill time, $2,
// with extra arguments after them) reaches n, keeping the latest count in *resumed, and returns
// when a process acquired the leader Lease after the kill (zero if none was seen).
func waitResumed(ctx context.Context, st *stage, label string, killAt time.Time, n int, resumed *int, count string, extra ...any) (time.Time, error) {
	var leaderAt time.Time
	args := append([]any{benchNamespace, killAt}, extra...)
	err := waitFor(ctx, label, 5*time.Minute, func() (bool, string, error) {
		if leaderAt.IsZero() {
			if h, acquired, err := leaseAcquired(ctx, st.cp.client); err == nil && h != "" && acquired.After(killAt) {
				leaderAt = time.Now()
			}
		}
		if err := st.pool.QueryRow(ctx, count, args...).Scan(resumed); err != nil {
			return false, "", fmt.Errorf("count resumed: %w", err)
		}
		return *resumed == n, fmt.Sprintf("resumed %d/%d (leader: %v)", *resumed, n, !leaderAt.IsZero()), nil
	})
	return leaderAt, err
}
