package main

import (
	"context"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// lifecycleResult is scenario 1 (+2, 4, 7) at one size.
type lifecycleResult struct {
	n            int
	elapsed      time.Duration
	tasksSec     float64
	complete     int // FINISHED rows with contiguous, complete history
	transitions  int
	writes       apiWrites
	stmts, xacts int64
	topStmts     []stmtCount
	commitP50    float64 // seconds, from taskpilot_transition_commit_seconds
	commitP99    float64
	crLag        dist // transition at -> watch event with that phase
	cpu          cpuShare
	prof         *profiles
	apiCeil      ceiling
	pgCeil       ceiling
	// apiCeilWatched is apiCeil with one watch on the objects held open and decoded meanwhile,
	// as any operator holds one: the yardstick taskpilot is held to (target ×0.9).
	apiCeilWatched ceiling
}

// watchedRatio is the throughput against the ceiling with a watch.
func (r lifecycleResult) watchedRatio() float64 {
	if r.apiCeilWatched.tasksSec == 0 {
		return 0
	}
	return r.tasksSec / r.apiCeilWatched.tasksSec
}

func (r lifecycleResult) tighter() ceiling {
	if r.pgCeil.tasksSec > 0 && r.pgCeil.tasksSec < r.apiCeil.tasksSec {
		return r.pgCeil
	}
	return r.apiCeil
}

func (r lifecycleResult) ratio() float64 { return r.tasksSec / r.tighter().tasksSec }

// runLifecycle creates n noop tasks at once and waits until every CR is Finished and every row
// FINISHED with its full history; then measures both ceilings with the same write mix.
func runLifecycle(ctx context.Context, e *env, n int, profile bool) (lifecycleResult, error) {
	res := lifecycleResult{n: n}
	st, err := e.newStage(ctx, fmt.Sprintf("lifecycle-%d", n), 64)
	if err != nil {
		return res, err
	}
	defer func() { _ = st.close() }()
	const ns = benchNamespace
	w, stopWatch := st.watchPhases(ctx, ns)
	defer stopWatch()

	comps := benchComponents(st)
	if err := resetStatements(ctx, st.pool); err != nil {
		return res, err
	}
	apiBefore, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return res, err
	}
	opBefore, err := st.op.scrape()
	if err != nil {
		return res, err
	}
	pgBefore, err := readPGCounters(ctx, st.pool)
	if err != nil {
		return res, err
	}
	cpuBefore := takeCPU(comps)
	var profCh chan profiles
	if profile {
		profCh = make(chan profiles, 1)
		go func() { profCh <- captureProfiles(ctx, st.dir, st.op, st.cp.clientset, e.opts.profileSec) }()
	}

	start := time.Now()
	spec := func(int) taskSpec { return taskSpec{taskName: "noop", params: `{}`, state: v1alpha1.DesiredRunning} }
	createErr := make(chan error, 1)
	go func() { createErr <- createTasks(ctx, st.cp.client, ns, "lc", n, e.opts.workers, spec) }()
	var lastCommit, createsDone time.Time
	for {
		select {
		case err := <-createErr:
			if err != nil {
				return res, err
			}
			createErr, createsDone = nil, time.Now()
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		rows, err := countStatus(ctx, st.pool, ns, "FINISHED")
		if err != nil {
			return res, err
		}
		crs := w.count(v1alpha1.PhaseFinished)
		progressf("[lifecycle %d] %s: CR Finished %d/%d, rows FINISHED %d/%d", n, time.Since(start).Truncate(time.Second), crs, n, rows, n)
		if rows == n && crs == n {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return res, fmt.Errorf("lifecycle %d: not finished after 10 min (CR %d, rows %d); operator log %s", n, crs, rows, e.logPath)
		}
	}
	res.complete, res.transitions, lastCommit, err = historyCheck(ctx, st.pool, ns, "FINISHED")
	if err != nil {
		return res, err
	}
	end := w.lastEntered(v1alpha1.PhaseFinished)
	var firstRow, lastRow time.Time
	_ = st.pool.QueryRow(ctx, `/*bench*/ SELECT min(created_at), max(created_at) FROM background_tasks WHERE namespace = $1`, ns).Scan(&firstRow, &lastRow)
	logf("lifecycle %d: creates done after %v; rows created %v..%v; last CR Finished after %v, last row change after %v", n, createsDone.Sub(start),
		firstRow.Sub(start), lastRow.Sub(start), end.Sub(start), lastCommit.Sub(start))
	if lastCommit.After(end) {
		end = lastCommit
	}
	res.elapsed = end.Sub(start)
	res.tasksSec = float64(n) / res.elapsed.Seconds()
	res.cpu = cpuDelta(cpuBefore, takeCPU(comps), comps)

	apiAfter, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return res, err
	}
	res.writes = writesFrom(apiAfter).minus(writesFrom(apiBefore))
	opAfter, err := st.op.scrape()
	if err != nil {
		return res, err
	}
	h := histDelta(opAfter.histogram("taskpilot_transition_commit_seconds"), opBefore.histogram("taskpilot_transition_commit_seconds"))
	res.commitP50, res.commitP99 = histQuantile(0.5, h), histQuantile(0.99, h)
	pgAfter, err := readPGCounters(ctx, st.pool)
	if err != nil {
		return res, err
	}
	res.stmts, res.xacts = pgAfter.statements-pgBefore.statements, pgAfter.xactCommit-pgBefore.xactCommit
	if res.topStmts, err = topStatements(ctx, st.pool, 8); err != nil {
		return res, err
	}
	trs, err := transitions(ctx, st.pool, ns, start.Add(-time.Second))
	if err != nil {
		return res, err
	}
	res.crLag = mirrorLag(w, trs)
	if profCh != nil {
		t := time.Now()
		p := <-profCh
		p.summarize()
		res.prof = &p
		progressf("[lifecycle %d] profiles done in %v", n, time.Since(t).Round(time.Millisecond))
	}
	stopWatch()

	// Ceilings, same control plane with the operator stopped, and a fresh database.
	if err := st.op.stop(); err != nil {
		return res, err
	}
	st.op = nil
	progressf("[lifecycle %d] apiserver/etcd ceiling", n)
	res.apiCeil, err = apiCeiling(ctx, st.cp.client, st.cp.clientset, "ceiling", n,
		int(res.writes.objectUpdates()+0.5), int(res.writes.statusUpdates()+0.5), e.opts.workers)
	if err != nil {
		return res, err
	}
	progressf("[lifecycle %d] apiserver/etcd ceiling with a watch on the objects", n)
	const watchedNS = "ceiling-watched"
	w, stopW := st.watchPhases(ctx, watchedNS)
	res.apiCeilWatched, err = apiCeiling(ctx, st.cp.client, st.cp.clientset, watchedNS, n,
		int(res.writes.objectUpdates()+0.5), int(res.writes.statusUpdates()+0.5), e.opts.workers)
	stopW()
	if err != nil {
		return res, err
	}
	logf("lifecycle %d: the ceiling's watch saw %d tasks Finished", n, w.count(v1alpha1.PhaseFinished))
	progressf("[lifecycle %d] PostgreSQL ceiling", n)
	res.pgCeil, err = pgCeiling(ctx, e.pg, fmt.Sprintf("bench_pgceil_%d", n), n, res.transitions-n, 16)
	if err != nil {
		return res, err
	}
	logf("lifecycle %5d: %7.1f tasks/s (%v); apiserver ceiling %7.1f tasks/s, PostgreSQL ceiling %7.1f tasks/s; ratio %.2f",
		n, res.tasksSec, res.elapsed.Round(time.Millisecond), res.apiCeil.tasksSec, res.pgCeil.tasksSec, res.ratio())
	return res, nil
}

// mirrorLag is, per recorded transition, the time from its `at` to the first watch event
// showing its phase on the CR (transitions coalesced away in status are not counted).
func mirrorLag(w *phaseWatcher, trs []transitionRow) dist {
	var lags []time.Duration
	for _, t := range trs {
		seen, ok := w.enteredAt(t.name, v1alpha1.PhaseOf(lifecycle.Status(t.to)))
		if ok && !seen.Before(t.at) {
			lags = append(lags, seen.Sub(t.at))
		}
	}
	return summarize(lags)
}
