package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/harness"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// results is everything the report tells.
type results struct {
	opts       options
	pl         plan
	started    time.Time
	wall       time.Duration
	machine    harness.Machine
	pgVersion  string
	dir        string
	phases     []phaseTime
	faults     []faultRecord
	notRun     []faultRecord // planned, but the fault deadline passed before they could start
	invs       []result
	settle     time.Duration // from the last recovery until every task did what its spec says (-1: never)
	redone     redone
	trans      int            // transitions recorded
	pairs      map[string]int // transitions by from -> to
	procs      []procRecord
	actions    map[actionKind]int
	failures   []string // driver requests given up
	samples    []sample
	chaosStart time.Time
	// deletedDuringRun are the tasks the driver deleted.
	deletedDuringRun map[string]deletedTask
	// specChanges are the times of the driver's spec changes (deletion included), by task uid.
	specChanges map[string][]time.Time
	// rowsClosed is how long after the last object vanished every row was soft-deleted.
	rowsClosed time.Duration
	// queuePauses are the pauses of a queue the run made (invariant 9).
	queuePauses []queuePause
}

// rowsClosedWithin bounds the wait for the rows of deleted objects to be soft-deleted: a
// sweep interval (1 minute) and a margin.
const rowsClosedWithin = 90 * time.Second

// phaseTime is how long a phase of the run took.
type phaseTime struct {
	name string
	took time.Duration
}

func run(ctx context.Context, log logr.Logger, opts options) (err error) {
	res := &results{opts: opts, started: time.Now(), pl: makePlan(opts.seed, opts.profile)}
	if _, err := os.Stat(opts.operator); err != nil {
		return fmt.Errorf("chaos operator binary: %w (go build -o %s ./test/witness/operator)", err, opts.operator)
	}
	if _, err := os.Stat(filepath.Join(kubetest.Assets(), "kube-apiserver")); err != nil {
		return fmt.Errorf("no control plane binaries: %w (run `make envtest` once, or set KUBEBUILDER_ASSETS)", err)
	}
	res.machine = harness.ReadMachine(opts.operator)
	if res.dir, err = makeWorkDir(); err != nil {
		return err
	}
	log.Info("chaos run", "seed", opts.seed, "profile", opts.profile.name, "tasks", len(res.pl.tasks),
		"actions", len(res.pl.actions), "faults", len(res.pl.faults), "dir", res.dir)
	phase := phaseClock(res)

	e, err := startEnv(ctx, log, res.dir, opts.operator, opts.sharded)
	defer func() {
		if cerr := e.close(); cerr != nil {
			log.Error(cerr, "cleanup")
		}
		// Kept on request, or when the run itself failed; broken invariants are in the report
		// (run again with --keep, same seed, for the logs).
		if opts.keep || (err != nil && !errors.Is(err, errBroken)) {
			log.Info("work directory kept (operator logs, data)", "dir", res.dir)
		} else {
			_ = os.RemoveAll(res.dir)
		}
	}()
	if err != nil {
		return err
	}
	res.pgVersion = e.pgVersion
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	for _, name := range opts.replicaNames() {
		if _, err := e.fleet.start(fleetCtx, name, true, true); err != nil {
			return err
		}
	}
	if _, _, err := e.fleet.waitLeader(ctx, time.Minute); err != nil {
		return err
	}
	phase(fmt.Sprintf("start-up: control plane, PostgreSQL, %d replicas", len(opts.replicaNames())))

	if err := warmUp(ctx, e, 20); err != nil {
		return err
	}
	before, beforeErr := measureLeader(ctx, e, "before")
	phase("warm-up batch and memory baseline")

	if err := chaosPhase(ctx, e, res); err != nil {
		return err
	}
	phase("chaos: load, user actions, faults")
	return checkAndReport(ctx, e, res, before, beforeErr, phase)
}

// phaseClock returns a function that records the time since the previous call under a name.
func phaseClock(res *results) func(string) {
	last := time.Now()
	return func(name string) {
		res.phases = append(res.phases, phaseTime{name: name, took: time.Since(last)})
		last = time.Now()
	}
}

// chaosPhase creates the load, applies the user actions and injects the faults; it returns
// when the driver is done and the last fault has recovered.
func chaosPhase(ctx context.Context, e *env, res *results) error {
	d := newDriver(e.client, res.pl)
	mon := &monitor{e: e, d: d}
	monCtx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	go mon.run(monCtx)

	if err := startSchedules(ctx, e); err != nil {
		return err
	}
	if err := startQueues(ctx, e); err != nil {
		return err
	}
	start := time.Now()
	res.chaosStart = start
	// The limited queue is paused once, in the middle of the faults, for a fifth of them.
	pauser := &queuePauser{c: e.client, db: e.db, log: e.log}
	pauseCtx, stopPauser := context.WithCancel(ctx)
	pauserDone := make(chan struct{})
	go func() {
		defer close(pauserDone)
		p := res.opts.profile
		pauser.run(pauseCtx, start, (p.faultsFrom+p.faultsUntil)/2, (p.faultsUntil-p.faultsFrom)/5)
	}()
	defer func() { stopPauser(); <-pauserDone }()
	// Bounds, so that a control plane that never comes back ends the run instead of hanging it.
	p := res.opts.profile
	driverCtx, stopDriver := context.WithDeadline(ctx, start.Add(max(p.faultsUntil, p.createOver)+2*time.Minute))
	defer stopDriver()
	faultCtx, stopFaults := context.WithDeadline(ctx, start.Add(faultDeadline(res.pl)))
	defer stopFaults()
	faults := make(chan faultRecord, len(res.pl.faults))
	go injectAll(faultCtx, e, res.pl, start, faults)
	d.run(driverCtx, start)
	if driverCtx.Err() != nil {
		d.fail("the driver ran out of time (%v): the rest of the plan was not applied", context.Cause(driverCtx))
	}
	for rec := range faults {
		if rec.notRun {
			res.notRun = append(res.notRun, rec)
			continue
		}
		res.faults = append(res.faults, rec)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.failures = d.failures
	res.actions = map[actionKind]int{}
	for _, in := range d.intents {
		for _, it := range in {
			if it.kind != actCreate {
				res.actions[it.kind]++
			}
		}
	}
	lastRecovered := start
	for _, f := range res.faults {
		if f.recovered.After(lastRecovered) {
			lastRecovered = f.recovered
		}
	}
	e.log.Info("faults over; invariant 3 is read 60 s after the last recovery", "last", lastRecovered.Format(time.TimeOnly))
	sleepCtx(ctx, time.Until(lastRecovered.Add(60*time.Second)))
	first, err := observe(ctx, e)
	if err != nil {
		return err
	}
	firstAlive := e.fleet.alivePIDs()
	sleepCtx(ctx, 2*time.Second)
	second, err := observe(ctx, e)
	if err != nil {
		return err
	}
	res.invs = append(res.invs, checkAgreement(first, second, firstAlive, e.fleet.alivePIDs(), e.fleet.diedAt(), lastRecovered))

	// Invariant 4 and 5 need every task to have done what its spec says.
	var final observation
	res.settle = -1
	werr := waitUntil(ctx, time.Until(lastRecovered.Add(res.opts.profile.settle)), func() (bool, error) {
		o, err := observe(ctx, e)
		if err != nil {
			return false, nil //nolint:nilerr // a slow read; try again
		}
		final = o
		if settled(o) {
			res.settle = time.Since(lastRecovered)
			return true, nil
		}
		return false, nil
	})
	if werr != nil {
		e.log.Info("not every task did what its spec says within the settle time", "settle", res.opts.profile.settle)
	}
	if final.crs == nil { // every read failed
		if final, err = observe(ctx, e); err != nil {
			return err
		}
	}
	stopPauser()
	<-pauserDone
	res.queuePauses = pauser.taken()
	res.invs = append(res.invs, checkNotStuck(final), checkAttempts(attemptInputs(final, d, res.pl)))
	stopMon()
	res.samples = mon.samples()
	convergence(res.faults, res.samples)
	if err := writeSamples(filepath.Join(res.dir, "convergence.tsv"), res.samples, res.chaosStart); err != nil {
		e.log.Error(err, "write convergence samples")
	}
	res.deletedDuringRun = deletedUIDs(d)
	res.specChanges = specChanges(d)
	return nil
}

// checkAndReport deletes everything, checks the remaining invariants and writes the report.
func checkAndReport(ctx context.Context, e *env, res *results, before memSample, beforeErr error, phase func(string)) error {
	// Invariant 8 first, while the schedules still fire: slots up to 15 s ago must be recorded.
	scheds, err := observeSchedules(ctx, e)
	if err != nil {
		return err
	}
	res.invs = append(res.invs, checkSchedules(scheds, time.Now().Add(-15*time.Second)))
	if err := e.client.DeleteAllOf(ctx, &v1alpha1.TaskSchedule{}, client.InNamespace(schedulesNamespace)); err != nil {
		return fmt.Errorf("delete the schedules: %w", err)
	}
	if err := deleteAll(ctx, e, schedulesNamespace, 2*time.Minute); err != nil {
		e.log.Info("not every child of the schedules is gone", "error", err.Error())
	}
	deleted := res.deletedDuringRun
	remaining, err := listCRs(ctx, e.client, namespace)
	if err != nil {
		return err
	}
	for uid, cr := range remaining {
		deleted[uid] = deletedTask{name: cr.name, seen: cr.phase != ""}
	}
	// The finalizer timeout (1 minute) bounds every deletion; a little more for a slow machine.
	if err := deleteAll(ctx, e, namespace, 2*time.Minute); err != nil {
		e.log.Info("not every BackgroundTask is gone", "error", err.Error())
	}
	phase("settle, delete every task")
	// Rows are soft-deleted after the objects vanish (no finalizer waits for it): by the
	// replica that runs the task when the deletion reaches its watch, else by a sweep (every
	// minute). Invariant 4 allows rowsClosedWithin for it.
	var final observation
	closedAt := time.Now()
	werr := waitUntil(ctx, rowsClosedWithin, func() (bool, error) {
		o, err := observe(ctx, e)
		if err != nil {
			return false, nil //nolint:nilerr // a slow read; try again
		}
		final = o
		for _, r := range o.rows {
			if !r.deleted {
				return false, nil
			}
		}
		return true, nil
	})
	res.rowsClosed = time.Since(closedAt)
	if werr != nil || final.rows == nil {
		if final, err = observe(ctx, e); err != nil {
			return err
		}
	}
	names := map[string]string{}
	interval := map[string]time.Duration{}
	byName := map[string]taskPlan{}
	for _, t := range res.pl.tasks {
		byName[t.name] = t
	}
	for uid, r := range final.rows {
		names[uid] = r.name
		interval[uid] = byName[r.name].interval
	}
	checkDeleted(res.inv("4"), final, deleted)
	res.inv("4").checked += fmt.Sprintf(" (every row closed %.1f s after the objects vanished)", res.rowsClosed.Seconds())
	queueOf := map[string]string{}
	for uid, name := range names {
		queueOf[uid] = byName[name].queue
	}
	limit := map[string]int{}
	for _, q := range chaosQueues() {
		limit[q.Name] = int(q.Spec.Concurrency)
	}
	items, err := observeTaskWithItems(ctx, e, final)
	if err != nil {
		return err
	}
	res.invs = append([]result{
		checkItems(items, res.frozen),
		checkQueues(final.execs, queueOf, interval, limit, res.queuePauses, names, res.during),
		checkNoDoubleRun(final.execs, names, res.during, res.frozen),
		checkHistory(final.trans, final.rows),
		checkOutagesStopNothing(final.execs, res.faults, res.specChanges, names),
	}, res.invs...)
	for _, f := range res.pl.faults {
		if isOutage(f.kind) { // planned, so not checking it is no pass
			res.inv("7").notApplicable = false
		}
	}
	// Invariant 6: nothing of the deleted tasks held in memory now; then the leak probe.
	afterRun, err := sampleReplicas(ctx, e)
	if err != nil {
		e.log.Info("cannot sample the replicas' memory after the run", "error", err.Error())
	}
	after, afterErr := measureLeader(ctx, e, "after")
	if beforeErr != nil || afterErr != nil {
		e.log.Info("cannot measure the leader's heap before or after the run", "before", beforeErr, "after", afterErr)
	}
	phase("memory after the run")
	probe := runLeakProbe(ctx, e, res.opts.probeTasks(), probeRounds)
	phase(fmt.Sprintf("leak probe: %d rounds of %d tasks", probeRounds, res.opts.probeTasks()))
	res.invs = append(res.invs, checkMemory(afterRun, probe, before, after))
	res.redone = workRedone(final.execs, interval)
	res.pairs = map[string]int{}
	for _, hs := range final.trans {
		res.trans += len(hs)
		for _, h := range hs {
			res.pairs[orNull(h.from)+" -> "+h.to]++
		}
	}
	res.procs = e.fleet.records()
	sort.Slice(res.invs, func(i, j int) bool { return invOrder(res.invs[i].id) < invOrder(res.invs[j].id) })
	phase("final checks")
	res.wall = time.Since(res.started)
	printSummary(os.Stdout, res)
	if res.opts.report != "" {
		if err := writeReport(res.opts.report, res); err != nil {
			return err
		}
		e.log.Info("report written", "path", res.opts.report)
	}
	var broken []string
	for _, r := range res.invs {
		if !r.held() {
			broken = append(broken, r.id)
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("%w: %v (see %s)", errBroken, broken, reportName(res))
	}
	return nil
}

// invOrder orders invariant ids as numbers ("10" after "9").
func invOrder(id string) int {
	n, err := strconv.Atoi(id)
	if err != nil {
		return 1 << 30
	}
	return n
}

// frozen reports whether process pid was frozen (SIGSTOP) at some time in [from, to].
func (res *results) frozen(pid int, from, to time.Time) bool {
	for _, f := range res.faults {
		if f.frozenPID == pid && f.injected.Before(to) && (f.recovered.IsZero() || f.recovered.After(from)) {
			return true
		}
	}
	return false
}

// observeTaskWithItems reads the task with items (invariant 10) as it ended.
func observeTaskWithItems(ctx context.Context, e *env, final observation) (itemsObs, error) {
	for uid, r := range final.rows {
		if r.name != itemsTaskName {
			continue
		}
		o, err := observeItems(ctx, e.db, e.wdb, uid)
		o.name, o.status, o.count, o.paused = r.name, r.status, itemsCount, pausedSpans(final.trans[uid])
		return o, err
	}
	return itemsObs{}, nil
}

// inv returns the result of invariant id.
func (res *results) inv(id string) *result {
	for i := range res.invs {
		if res.invs[i].id == id {
			return &res.invs[i]
		}
	}
	res.invs = append(res.invs, result{id: id, skipped: "not run"})
	return &res.invs[len(res.invs)-1]
}

// errBroken: the run completed and some invariants do not hold.
var errBroken = errors.New("invariants broken")

func reportName(res *results) string {
	if res.opts.report == "" {
		return "the summary above"
	}
	return filepath.Base(res.opts.report)
}

// during names the fault in progress at t, or else the last one that recovered within 30 s
// before t: its kind, and a phrase for counter-examples.
func (res *results) during(t time.Time) (string, string) {
	var recent *faultRecord
	for i, f := range res.faults {
		if !t.Before(f.injected) && !t.After(f.recovered) {
			return string(f.kind), fmt.Sprintf(", during %s (%s)", f.kind, f.target)
		}
		if t.After(f.recovered) && t.Sub(f.recovered) < 30*time.Second {
			recent = &res.faults[i]
		}
	}
	if recent != nil {
		return string(recent.kind), fmt.Sprintf(", %.0f s after %s (%s)", t.Sub(recent.recovered).Seconds(), recent.kind, recent.target)
	}
	return "", ""
}

// specChanges are the times of the driver's spec changes, deletions included, by task uid.
func specChanges(d *driver) map[string][]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]time.Time{}
	for i, its := range d.intents {
		for _, it := range its {
			out[d.uids[i]] = append(out[d.uids[i]], it.at)
		}
	}
	for i, at := range d.deleted {
		out[d.uids[i]] = append(out[d.uids[i]], at)
	}
	return out
}

// deletedUIDs are the tasks the driver deleted, by uid.
func deletedUIDs(d *driver) map[string]deletedTask {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]deletedTask{}
	for i := range d.deleted {
		out[d.uids[i]] = deletedTask{name: d.pl.tasks[i].name, seen: d.seenBeforeDelete[i]}
	}
	return out
}

// attemptInputs assembles invariant 5's input per task from the settled observation.
func attemptInputs(o observation, d *driver, pl plan) []attemptInput {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []attemptInput
	for i, t := range pl.tasks {
		uid, ok := d.uids[i]
		if !ok {
			continue
		}
		in := attemptInput{label: taskLabel(t.name, uid), hist: o.trans[uid], intents: d.intents[i],
			maxRetries: int(t.maxRetries), execs: o.execs[uid]}
		if cr, ok := o.crs[uid]; ok {
			in.cr = &cr
		}
		out = append(out, in)
	}
	return out
}
