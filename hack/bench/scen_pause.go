package main

import (
	"context"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// pauseResult is scenario 3 (+ mirror lag of the pause/resume transitions).
type pauseResult struct {
	n                       int
	pauseCR, pauseRow       dist
	resumeCR, resumeRow     dist
	patchPause, patchResume time.Duration // how long sending all patches took
	commitP50, commitP99    float64
	crLag                   dist
	cpu                     cpuShare
	// statusCeil is the same run's status writes per second with the operator stopped
	// (statusCeiling), the yardstick of the pause → CR target.
	statusCeil float64
	// Where a pause's latency goes: the patch's own round trip (sent -> answered), the rest
	// until the row's transition (the watch to the operator, its queue, the runner), and the
	// wait in the reconciler's queue (workqueue_queue_duration_seconds, p99).
	patchRTT, ackToRow dist
	queueP99           float64
	// The operator's own share (taskpilot_desired_state_seconds): from its reconciler seeing
	// the new spec.state to the commit of the row's transition, p50 and p99 in seconds.
	opPauseP50, opPauseP99, opResumeP50, opResumeP99 float64
}

// crTarget is the pause → CR Paused p99 target: 1.2 × the least time the apiserver needs for n
// status writes, plus 0.5 s.
func (p *pauseResult) crTarget() time.Duration {
	if p.statusCeil <= 0 {
		return 0
	}
	return time.Duration(1.2*float64(p.n)/p.statusCeil*float64(time.Second)) + 500*time.Millisecond
}

// pausePoints is a task that reaches a pause point every 10 ms and never checkpoints (a
// countdown whose checkpoint interval is beyond its length), so the measurement is the
// pause path alone. The built-in sleep with tick 10ms would also checkpoint every 10 ms,
// i.e. 100,000 checkpoint writes/s for 1,000 tasks: a checkpoint benchmark, not a pause one.
const pausePoints = `{"from":1000000,"interval":"10ms","checkpointEvery":1000000}`

func runPause(ctx context.Context, e *env, n int) (*pauseResult, error) {
	res := &pauseResult{n: n}
	st, err := e.newStage(ctx, fmt.Sprintf("pause-%d", n), n+16)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	const ns = benchNamespace
	w, stopWatch := st.watchPhases(ctx, ns)
	defer stopWatch()

	spec := func(int) taskSpec {
		return taskSpec{taskName: "countdown", params: pausePoints, state: v1alpha1.DesiredRunning}
	}
	if err := createTasks(ctx, st.cp.client, ns, "p", n, e.opts.workers, spec); err != nil {
		return nil, err
	}
	if err := waitAll(ctx, st, w, ns, "pause: start", n, v1alpha1.PhaseRunning, "RUNNING"); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 2*time.Second) // let the last status writes settle
	comps := benchComponents(st)
	cpuBefore := takeCPU(comps)
	opBefore, err := st.op.scrape()
	if err != nil {
		return nil, err
	}

	t0 := time.Now()
	sent, acked, err := patchStateAcked(ctx, st.cp.client, ns, "p", n, e.opts.workers, v1alpha1.DesiredPaused)
	if err != nil {
		return nil, err
	}
	res.patchPause = time.Since(t0)
	if err := waitAll(ctx, st, w, ns, "pause", n, v1alpha1.PhasePaused, "PAUSED"); err != nil {
		return nil, err
	}
	trs, err := transitions(ctx, st.pool, ns, t0.Add(-time.Second))
	if err != nil {
		return nil, err
	}
	res.pauseCR, res.pauseRow = latencies(w, trs, sent, "RUNNING", "PAUSED", v1alpha1.PhasePaused)
	res.patchRTT, res.ackToRow = splitLatency(trs, sent, acked, "RUNNING", "PAUSED")
	opPaused, err := st.op.scrape()
	if err != nil {
		return nil, err
	}
	q := histDelta(opPaused.histogramWhere("workqueue_queue_duration_seconds", "name", "backgroundtask"),
		opBefore.histogramWhere("workqueue_queue_duration_seconds", "name", "backgroundtask"))
	res.queueP99 = histQuantile(0.99, q)
	share := func(after, before metricSet, desired string) []bucket {
		return histDelta(after.histogramWhere("taskpilot_desired_state_seconds", "desired", desired),
			before.histogramWhere("taskpilot_desired_state_seconds", "desired", desired))
	}
	ps := share(opPaused, opBefore, "PAUSED")
	res.opPauseP50, res.opPauseP99 = histQuantile(0.5, ps), histQuantile(0.99, ps)

	t1 := time.Now()
	sent, err = patchState(ctx, st.cp.client, ns, "p", n, e.opts.workers, v1alpha1.DesiredRunning)
	if err != nil {
		return nil, err
	}
	res.patchResume = time.Since(t1)
	if err := waitAll(ctx, st, w, ns, "resume", n, v1alpha1.PhaseRunning, "RUNNING"); err != nil {
		return nil, err
	}
	trs, err = transitions(ctx, st.pool, ns, t0.Add(-time.Second))
	if err != nil {
		return nil, err
	}
	res.resumeCR, res.resumeRow = latencies(w, trs, sent, "PAUSED", "RUNNING", v1alpha1.PhaseRunning)
	res.crLag = mirrorLag(w, trs)
	res.cpu = cpuDelta(cpuBefore, takeCPU(comps), comps)
	opAfter, err := st.op.scrape()
	if err != nil {
		return nil, err
	}
	h := histDelta(opAfter.histogram("taskpilot_transition_commit_seconds"), opBefore.histogram("taskpilot_transition_commit_seconds"))
	res.commitP50, res.commitP99 = histQuantile(0.5, h), histQuantile(0.99, h)
	rs := share(opAfter, opPaused, "RUNNING")
	res.opResumeP50, res.opResumeP99 = histQuantile(0.5, rs), histQuantile(0.99, rs)

	// The yardstick, same control plane, operator stopped.
	stopWatch()
	if err := st.op.stop(); err != nil {
		return nil, err
	}
	st.op = nil
	progressf("[pause %d] status-write ceiling", n)
	if res.statusCeil, err = statusCeiling(ctx, st.cp.client, ns, "p", n, e.opts.workers); err != nil {
		return nil, err
	}
	logf("pause %d: status-write ceiling %.0f writes/s, so pause → CR target %v", n, res.statusCeil, res.crTarget())
	logf("pause %d: CR p50 %v p99 %v, row p99 %v; resume CR p50 %v p99 %v, row p99 %v",
		n, res.pauseCR.p50, res.pauseCR.p99, res.pauseRow.p99, res.resumeCR.p50, res.resumeCR.p99, res.resumeRow.p99)
	return res, nil
}

// waitAll waits until n CRs show phase and n rows have status.
func waitAll(ctx context.Context, st *stage, w *phaseWatcher, ns, label string, n int, phase v1alpha1.Phase, status string) error {
	return waitFor(ctx, label, 10*time.Minute, func() (bool, string, error) {
		rows, err := countStatus(ctx, st.pool, ns, status)
		if err != nil {
			return false, "", err
		}
		crs := w.count(phase)
		return rows == n && crs == n, fmt.Sprintf("CR %s %d/%d, rows %s %d/%d", phase, crs, n, status, rows, n), nil
	})
}

// splitLatency splits patch → row into the patch's round trip and what follows its answer.
func splitLatency(trs []transitionRow, sent, acked map[string]time.Time, from, to string) (rtt, rest dist) {
	var rtts, rests []time.Duration
	for name, t := range sent {
		rtts = append(rtts, acked[name].Sub(t))
	}
	for _, tr := range trs {
		a, ok := acked[tr.name]
		if ok && tr.from == from && tr.to == to {
			rests = append(rests, tr.at.Sub(a))
		}
	}
	return summarize(rtts), summarize(rests)
}

// latencies measures, per task, patch send time -> CR phase (watch) and -> the transition's
// `at` in PostgreSQL (the runner's event time; the commit follows within the commit lag).
func latencies(w *phaseWatcher, trs []transitionRow, sent map[string]time.Time, from, to string, phase v1alpha1.Phase) (cr, row dist) {
	var crs, rows []time.Duration
	for name, t := range sent {
		if seen, ok := w.enteredAt(name, phase); ok && seen.After(t) {
			crs = append(crs, seen.Sub(t))
		}
	}
	for _, tr := range trs {
		t, ok := sent[tr.name]
		if ok && tr.from == from && tr.to == to && !tr.at.Before(t) {
			rows = append(rows, tr.at.Sub(t))
		}
	}
	return summarize(crs), summarize(rows)
}
