package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/membership"
)

// shardingResult is scenario 8 for one number of replicas: the same work on one leader or on
// replicas that share it (--sharding).
type shardingResult struct {
	replicas int
	// Throughput of n noop tasks, its API writes, and the same-run ceiling for that write mix.
	n             int
	tasksSec      float64
	writesPerTask float64
	ceil          ceiling
	cpu           cpuShare
	// long sleep tasks running at once, and each replica's share of them and RSS.
	long   int
	shares []int
	rss    []int64
	// After one replica is SIGKILLed (replicas > 1): until its tasks run again elsewhere.
	lease     time.Duration
	moved     int
	rebalance time.Duration
	// The breakdown of the rebalance, from the kill (see takeoverResult).
	lastRenewal, rowExpired, firstResumed time.Duration
}

func (r shardingResult) ratio() float64 { return r.tasksSec / r.ceil.tasksSec }

// replicaIdentities names the replicas of the scenario.
func replicaIdentities(k int) []string {
	var out []string
	for i := range k {
		out = append(out, fmt.Sprintf("bench-%c", 'a'+i))
	}
	return out
}

// runSharding runs n noop tasks, then long tasks, on `replicas` operator processes (sharded
// when more than one), then kills one and waits until its tasks run on the others.
func runSharding(ctx context.Context, e *env, replicas, n, long int) (*shardingResult, error) {
	res := &shardingResult{replicas: replicas, n: n, long: long, lease: membership.DefaultLeaseDuration}
	st, err := e.newStage(ctx, fmt.Sprintf("sharding-%d", replicas), 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	ops := map[string]*operatorProc{}
	defer func() {
		for _, op := range ops {
			_ = op.stop()
		}
	}()
	ids := replicaIdentities(replicas)
	for _, id := range ids {
		spec := st.opSpec
		spec.identity, spec.maxTasks = id, n+long+16
		if replicas > 1 {
			spec.extraArgs = append(spec.extraArgs, "--sharding")
		}
		progressf("[sharding %d] starting %s", replicas, id)
		if ops[id], err = startOperator(ctx, spec); err != nil {
			return nil, err
		}
	}
	if err := waitLeader(ctx, st); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 2*time.Second) // every replica has joined, the sharder has read the membership
	const ns = benchNamespace
	w, stopWatch := st.watchPhases(ctx, ns)
	defer stopWatch()

	// Throughput.
	comps := []component{{"kube-apiserver", st.cp.apiPID, false}, {"etcd", st.cp.etcdPID, false}, {"postgres", st.pg.pid, false}}
	for _, id := range ids {
		comps = append(comps, component{"taskpilot " + id, ops[id].pid(), false})
	}
	apiBefore, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return nil, err
	}
	cpuBefore := takeCPU(comps)
	start := time.Now()
	noop := func(int) taskSpec { return taskSpec{taskName: "noop", params: `{}`, state: v1alpha1.DesiredRunning} }
	if err := createTasks(ctx, st.cp.client, ns, "sn", n, e.opts.workers, noop); err != nil {
		return nil, err
	}
	if err := waitAll(ctx, st, w, ns, fmt.Sprintf("sharding %d: noop", replicas), n, v1alpha1.PhaseFinished, "FINISHED"); err != nil {
		return nil, err
	}
	_, _, lastCommit, err := historyCheck(ctx, st.pool, ns, "FINISHED")
	if err != nil {
		return nil, err
	}
	end := w.lastEntered(v1alpha1.PhaseFinished)
	if lastCommit.After(end) {
		end = lastCommit
	}
	res.tasksSec = float64(n) / end.Sub(start).Seconds()
	res.cpu = cpuDelta(cpuBefore, takeCPU(comps), comps)
	apiAfter, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return nil, err
	}
	writes := writesFrom(apiAfter).minus(writesFrom(apiBefore))
	res.writesPerTask = writes.total() / float64(n)

	// Footprint per replica with long tasks running.
	sleepy := func(int) taskSpec {
		return taskSpec{taskName: "sleep", params: footprintSleep, state: v1alpha1.DesiredRunning}
	}
	if err := createTasks(ctx, st.cp.client, ns, "sl", long, e.opts.workers, sleepy); err != nil {
		return nil, err
	}
	if err := waitAll(ctx, st, w, ns, fmt.Sprintf("sharding %d: long tasks", replicas), long, v1alpha1.PhaseRunning, "RUNNING"); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 3*time.Second)
	perOwner, err := runningPerOwner(ctx, st, ns)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		rss, err := rssBytes(ops[id].pid())
		if err != nil {
			return nil, err
		}
		res.rss, res.shares = append(res.rss, rss), append(res.shares, perOwner[id])
	}

	if replicas > 1 {
		victim := ids[len(ids)-1]
		res.moved = perOwner[victim]
		killAt := time.Now()
		if err := ops[victim].kill(); err != nil {
			return nil, err
		}
		delete(ops, victim)
		err := waitFor(ctx, fmt.Sprintf("sharding %d: rebalance", replicas), 5*time.Minute, func() (bool, string, error) {
			per, err := runningPerOwner(ctx, st, ns)
			if err != nil {
				return false, "", err
			}
			total := 0
			for _, k := range per {
				total += k
			}
			return per[victim] == 0 && total == long, fmt.Sprintf("still on %s: %d, running: %d/%d", victim, per[victim], total, long), nil
		})
		if err != nil {
			return nil, err
		}
		// When the last of them actually resumed (its transition), not when the poll saw it.
		res.rebalance = lastResumed(ctx, st, ns, killAt).Sub(killAt)
		res.lastRenewal, res.rowExpired, res.firstResumed = takeoverBreakdown(ctx, st, victim, killAt)
	}
	stopWatch()

	// The ceiling for the same write mix, same control plane, operators stopped.
	var stopErrs []error
	for id, op := range ops {
		stopErrs = append(stopErrs, op.stop())
		delete(ops, id)
	}
	if err := errors.Join(stopErrs...); err != nil {
		return nil, err
	}
	progressf("[sharding %d] apiserver/etcd ceiling", replicas)
	res.ceil, err = apiCeiling(ctx, st.cp.client, st.cp.clientset, "ceiling", n,
		int(writes.objectUpdates()+0.5), int(writes.statusUpdates()+0.5), e.opts.workers)
	if err != nil {
		return nil, err
	}
	logf("sharding %d: %.0f tasks/s = %.2f× ceiling (%.0f tasks/s), %.2f writes/task; shares %v; rebalance %v",
		replicas, res.tasksSec, res.ratio(), res.ceil.tasksSec, res.writesPerTask, res.shares, res.rebalance.Round(time.Millisecond))
	return res, nil
}

// runningPerOwner counts the RUNNING rows of each owner.
func runningPerOwner(ctx context.Context, st *stage, ns string) (map[string]int, error) {
	rows, err := st.pool.Query(ctx, `/*bench*/ SELECT coalesce(owner, ''), count(*) FROM background_tasks
WHERE namespace = $1 AND status = 'RUNNING' GROUP BY owner`, ns)
	if err != nil {
		return nil, fmt.Errorf("running per owner: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var owner string
		var k int
		if err := rows.Scan(&owner, &k); err != nil {
			return nil, fmt.Errorf("running per owner: %w", err)
		}
		out[owner] = k
	}
	return out, rows.Err()
}
