package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/taskpilot/taskpilot/test/pgtest"
)

// faultRecord is what happened when a fault was injected.
type faultRecord struct {
	fault
	injected  time.Time // when the fault began
	recovered time.Time // when its last step was done (thawed, started again, rogue stopped)
	target    string
	detail    string
	// frozenPID is the process a SIGSTOP froze, from injected to recovered (0: none).
	frozenPID int
	// takeover is how long after the injection a ready leader (another process) led.
	takeover time.Duration
	// converged is how long after recovered the system was converged again (-1: it was not
	// before the next fault or the end of the run).
	converged time.Duration
	// fewest is the fewest tasks whose phase and row disagreed in a sample between the
	// recovery and the next fault (-1: no sample).
	fewest int
	// cut: the fault deadline ended the fault before its hold; notRun: it passed before the
	// fault could start.
	cut, notRun bool
	err         error
}

// minFaultGap keeps faults apart: each starts at least this long after the previous one
// recovered, even when its planned time has passed (the order is kept). After an outage of a
// backend the gap is outageGap, long enough to see the statuses catch up (the convergence
// column) before the next fault.
const (
	minFaultGap = 10 * time.Second
	outageGap   = 45 * time.Second
)

// injectAll runs the planned faults in order; it returns when the last one has recovered.
func injectAll(ctx context.Context, e *env, pl plan, start time.Time, out chan<- faultRecord) {
	defer close(out)
	var last time.Time
	gap := minFaultGap
	for i, f := range pl.faults {
		at := start.Add(f.at)
		if !last.IsZero() && at.Before(last.Add(gap)) {
			at = last.Add(gap)
		}
		select {
		case <-ctx.Done():
			for _, g := range pl.faults[i:] { // reported, not dropped without a word
				e.log.Info("fault not run: the fault deadline passed", "fault", g.kind)
				out <- faultRecord{fault: g, notRun: true, converged: -1, fewest: -1}
			}
			return
		case <-time.After(time.Until(at)):
		}
		rec := inject(ctx, e, f)
		if rec.err != nil {
			e.log.Error(rec.err, "fault failed", "fault", f.kind)
		} else {
			e.log.Info("fault done", "fault", f.kind, "target", rec.target, "held", f.hold, "detail", rec.detail)
		}
		last, gap = rec.recovered, minFaultGap
		if isOutage(f.kind) {
			gap = outageGap
		}
		out <- rec
	}
}

func inject(ctx context.Context, e *env, f fault) faultRecord {
	rec := faultRecord{fault: f, converged: -1, fewest: -1}
	switch f.kind {
	case faultKillLeader:
		rec.err = killLeader(ctx, e, &rec)
	case faultStopLeader:
		rec.err = freezeLeader(ctx, e, &rec)
	case faultPostgres:
		rec.err = postgresDown(ctx, e, &rec)
	case faultAPIServer:
		rec.err = apiServerDown(ctx, e, &rec)
	case faultSlowLease:
		rec.err = slowLeases(ctx, e, &rec)
	case faultSplitBrain:
		rec.err = splitBrain(ctx, e, &rec)
	}
	if rec.recovered.IsZero() {
		rec.recovered = time.Now()
	}
	if rec.injected.IsZero() {
		rec.injected = rec.recovered
	}
	return rec
}

// killLeader SIGKILLs the leader; the supervisor starts it again like a Deployment would.
func killLeader(ctx context.Context, e *env, rec *faultRecord) error {
	r, pid, err := e.fleet.waitLeader(ctx, time.Minute)
	if err != nil {
		return err
	}
	rec.target = fmt.Sprintf("replica %s (pid %d)", r.name, pid)
	rec.injected = time.Now()
	if _, err := r.signal(syscall.SIGKILL); err != nil {
		return err
	}
	rec.recovered = time.Now()
	return takeover(ctx, e, rec, pid)
}

// freezeLeader SIGSTOPs the leader past its lease, waits for another process to lead, and
// SIGCONTs it: a stale leader that wakes up believing it still leads.
func freezeLeader(ctx context.Context, e *env, rec *faultRecord) error {
	r, pid, err := e.fleet.waitLeader(ctx, time.Minute)
	if err != nil {
		return err
	}
	rec.target = fmt.Sprintf("replica %s (pid %d), frozen %s", r.name, pid, rec.hold)
	rec.frozenPID = pid
	rec.injected = time.Now()
	if _, err := r.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	// Thawed at the end of the hold whether or not another process took over meanwhile.
	frozenCtx, cancel := context.WithDeadline(ctx, rec.injected.Add(rec.hold))
	terr := takeover(frozenCtx, e, rec, pid)
	cancel()
	if terr != nil {
		terr = fmt.Errorf("no other process led while the leader was frozen for %s: %w", rec.hold, terr)
	}
	rec.cut = !sleepCtx(ctx, time.Until(rec.injected.Add(rec.hold)))
	if _, err := r.signal(syscall.SIGCONT); err != nil {
		return err
	}
	rec.recovered = time.Now()
	// What does the woken process do? It should notice at once that it lost the Lease.
	rec.detail = "woken process still running 15 s after SIGCONT"
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if p, ok := e.fleet.record(pid); ok && !p.ended.IsZero() {
			rec.detail = fmt.Sprintf("woken process exited %.1f s after SIGCONT (%s)", p.ended.Sub(rec.recovered).Seconds(), p.exit)
			break
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return terr
}

// postgresDown stops PostgreSQL like a crash (immediate shutdown) and starts it again after
// the hold.
func postgresDown(ctx context.Context, e *env, rec *faultRecord) error {
	rec.target = "PostgreSQL (immediate shutdown)"
	before := leaderPID(e)
	rec.injected = time.Now()
	if err := e.pg.Stop(pgtest.StopImmediate); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	rec.cut = !sleepCtx(ctx, rec.hold)
	if err := e.pg.Restart(); err != nil {
		return fmt.Errorf("start PostgreSQL again: %w", err)
	}
	rec.recovered = time.Now()
	rec.detail = leaderChange(ctx, e, before, rec.recovered)
	return nil
}

// apiServerDown stops kube-apiserver, keeps it down for the hold, and starts it again.
func apiServerDown(ctx context.Context, e *env, rec *faultRecord) error {
	rec.target = fmt.Sprintf("kube-apiserver, down %s", rec.hold)
	before := leaderPID(e)
	rec.injected = time.Now()
	graceful, err := e.cp.RestartAPIServer(rec.hold)
	if err != nil {
		return err
	}
	rec.recovered = time.Now()
	rec.detail = leaderChange(ctx, e, before, rec.recovered)
	if !graceful {
		rec.detail = "it did not stop within 20 s of SIGTERM and was killed; " + rec.detail
	}
	return nil
}

// slowLeases makes the API server answer the replicas' Lease requests slowLeaseDelay late (an
// overloaded control plane) for the hold, while it answers everything else at once: no
// replica renews a Lease in time, leadership comes and goes, and each replica keeps its tasks
// through its membership row.
func slowLeases(ctx context.Context, e *env, rec *faultRecord) error {
	rec.target = fmt.Sprintf("Lease requests answered %s late for %s", slowLeaseDelay, rec.hold)
	before := leaderPID(e)
	delayed := e.proxy.Delayed()
	rec.injected = time.Now()
	e.proxy.SlowLeases(slowLeaseDelay)
	rec.cut = !sleepCtx(ctx, rec.hold)
	e.proxy.SlowLeases(0)
	rec.recovered = time.Now()
	rec.detail = fmt.Sprintf("%d Lease requests delayed; %s", e.proxy.Delayed()-delayed, leaderChange(ctx, e, before, rec.recovered))
	return nil
}

// splitBrain starts a third operator without leader election next to the two replicas, lets
// it run for the hold, and stops it (SIGTERM).
func splitBrain(ctx context.Context, e *env, rec *faultRecord) error {
	rec.injected = time.Now()
	r, err := e.fleet.start(ctx, "rogue", false, false)
	if err != nil {
		return err
	}
	op := r.current()
	rec.target = fmt.Sprintf("third operator, --leader-elect=false (pid %d) for %s", op.PID(), rec.hold)
	rec.cut = !sleepCtx(ctx, time.Until(rec.injected.Add(rec.hold)))
	if err := op.Stop(15 * time.Second); err != nil {
		return err
	}
	rec.recovered = time.Now()
	var tasks, execs int
	if err := e.wdb.QueryRow(ctx, `SELECT count(DISTINCT task_uid), count(DISTINCT exec_id) FROM chaos_witness WHERE pid = $1`,
		op.PID()).Scan(&tasks, &execs); err == nil {
		rec.detail = fmt.Sprintf("the third operator executed %d witness tasks (%d executions)", tasks, execs)
	}
	return nil
}

// takeover waits for a ready leader other than pid and records how long it took.
func takeover(ctx context.Context, e *env, rec *faultRecord, pid int) error {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		if r, p, err := e.fleet.waitLeader(ctx, 5*time.Second); err == nil && p != pid {
			rec.takeover = time.Since(rec.injected)
			rec.detail = fmt.Sprintf("replica %s (pid %d) led after %.1f s", r.name, p, rec.takeover.Seconds())
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("no new leader within 2 minutes of %s", rec.kind)
}

func leaderPID(e *env) int {
	_, pid, _ := e.fleet.leader()
	return pid
}

// leaderChange says whether the leader changed over an outage, once one leads again.
func leaderChange(ctx context.Context, e *env, before int, recovered time.Time) string {
	_, after, err := e.fleet.waitLeader(ctx, time.Minute)
	switch {
	case err != nil:
		return "no leader within a minute of recovery"
	case after == before:
		return fmt.Sprintf("leader pid %d kept leading", after)
	default:
		return fmt.Sprintf("leader changed: pid %d -> pid %d (leading %.1f s after recovery)", before, after, time.Since(recovered).Seconds())
	}
}

// sleepCtx sleeps d, or less when ctx ends first; it reports whether it slept all of d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
