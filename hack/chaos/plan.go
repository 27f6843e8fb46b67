package main

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// actionKind is what the driver does to a task, the way a user or GitOps would.
type actionKind string

const (
	actCreate  actionKind = "create"  // the BackgroundTask is created
	actPause   actionKind = "pause"   // spec.state Running -> Paused
	actResume  actionKind = "resume"  // spec.state Paused -> Running
	actStop    actionKind = "stop"    // spec.state -> Stopped
	actStart   actionKind = "start"   // spec.state Stopped -> Running (a new attempt)
	actRestart actionKind = "restart" // spec.restartGeneration + 1
	actDelete  actionKind = "delete"  // delete the BackgroundTask
)

// action is one scheduled spec change.
type action struct {
	at   time.Duration // offset from the start of the chaos phase
	kind actionKind
	task int
}

// faultKind is one kind of fault.
type faultKind string

const (
	faultKillLeader faultKind = "SIGKILL leader"
	faultStopLeader faultKind = "SIGSTOP leader"
	faultPostgres   faultKind = "PostgreSQL down"
	faultAPIServer  faultKind = "kube-apiserver down"
	faultSlowLease  faultKind = "slow Lease answers"
	faultSplitBrain faultKind = "split brain"
)

// slowLeaseDelay is how late the API server answers Lease requests during faultSlowLease:
// past the replicas' renew deadline (operatorArgs), so no Lease is renewed in time.
const slowLeaseDelay = 6 * time.Second

// fault is one scheduled fault.
type fault struct {
	at   time.Duration
	kind faultKind
	// hold is how long the fault lasts: frozen, down, or the rogue replica running.
	hold time.Duration
}

// plan is everything a seed decides: the load, the user actions and the faults. It is a pure
// function of the seed and the profile, so the same seed gives the same run (timing aside).
type plan struct {
	seed    uint64
	tasks   []taskPlan
	actions []action
	faults  []fault
}

// leaseSeconds is the replicas' lease duration in seconds (see operatorArgs): a frozen leader
// is held past it.
const leaseSeconds = 6

func makePlan(seed uint64, p profile) plan {
	r := rand.New(rand.NewPCG(seed, seed^0x7461736b70696c6f))
	pl := plan{seed: seed, tasks: planTasks(r, p.tasks, p.createOver)}
	pl.actions = planActions(r, pl.tasks, p)
	pl.faults = planFaults(r, p)
	// The task with items, created a little before the first fault, paused once.
	created := max(p.faultsFrom-5*time.Second, 0)
	pl.tasks = append(pl.tasks, itemsTask(created))
	i := len(pl.tasks) - 1
	pl.actions = append(pl.actions, action{at: created + itemsPauseAfter, kind: actPause, task: i},
		action{at: created + itemsPauseAfter + itemsPausedFor, kind: actResume, task: i})
	slices.SortStableFunc(pl.actions, func(a, b action) int { return cmp.Compare(a.at, b.at) })
	return pl
}

// planActions draws the driver's actions at about actionsPerSecond from 5 s into the chaos
// phase until faultsUntil, each on a task whose current spec (as the driver itself
// will have left it: it is the only writer of spec) makes the action meaningful.
func planActions(r *rand.Rand, tasks []taskPlan, p profile) []action {
	type specModel struct {
		state   v1alpha1.DesiredState
		deleted bool
	}
	model := make([]specModel, len(tasks))
	for i, t := range tasks {
		model[i].state = t.state
	}
	weights := []struct {
		kind   actionKind
		weight int
		ok     func(m specModel) bool
	}{
		{actPause, 25, func(m specModel) bool { return m.state == v1alpha1.DesiredRunning }},
		{actResume, 25, func(m specModel) bool { return m.state == v1alpha1.DesiredPaused }},
		{actStop, 10, func(m specModel) bool { return m.state != v1alpha1.DesiredStopped }},
		{actStart, 10, func(m specModel) bool { return m.state == v1alpha1.DesiredStopped }},
		{actRestart, 20, func(specModel) bool { return true }},
		{actDelete, 6, func(specModel) bool { return true }},
	}
	total := 0
	for _, w := range weights {
		total += w.weight
	}
	var out []action
	step := time.Duration(float64(time.Second) / p.actionsPerSecond)
	for at := 5 * time.Second; at < p.faultsUntil; at += step {
		pick := r.IntN(total)
		for _, w := range weights {
			if pick >= w.weight {
				pick -= w.weight
				continue
			}
			// Candidates: created at least 2 s ago (the operator has seen them), not deleted.
			var cands []int
			for i, t := range tasks {
				if t.createAt+2*time.Second <= at && !model[i].deleted && w.ok(model[i]) {
					cands = append(cands, i)
				}
			}
			if len(cands) == 0 {
				break
			}
			i := cands[r.IntN(len(cands))]
			out = append(out, action{at: at, kind: w.kind, task: i})
			switch w.kind {
			case actPause:
				model[i].state = v1alpha1.DesiredPaused
			case actResume, actStart:
				model[i].state = v1alpha1.DesiredRunning
			case actStop:
				model[i].state = v1alpha1.DesiredStopped
			case actDelete:
				model[i].deleted = true
			case actRestart, actCreate:
			}
			break
		}
	}
	return out
}

// planFaults shuffles the profile's faults and spreads them from faultsFrom, each at a jittered
// slot of its own over [faultsFrom, faultsUntil], but never before the previous one has had
// its whole time and the gap after it (fault.takes, gapAfter): every planned fault runs for as
// long as it is planned to, and the fault deadline (faultDeadline) leaves room for all of them.
func planFaults(r *rand.Rand, p profile) []fault {
	kinds := append([]faultKind(nil), p.faults...)
	r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	slot := (p.faultsUntil - p.faultsFrom) / time.Duration(max(len(kinds), 1))
	out := make([]fault, len(kinds))
	var next time.Duration
	for i, k := range kinds {
		f := fault{kind: k, at: p.faultsFrom + time.Duration(i)*slot + time.Duration(r.Int64N(int64(slot/4)+1))}
		switch k {
		case faultStopLeader:
			f.hold = time.Duration(leaseSeconds+3+r.IntN(6)) * time.Second // well past the lease
		case faultPostgres:
			f.hold = p.pgDown
		case faultAPIServer:
			f.hold = p.apiDown
		case faultSlowLease:
			f.hold = p.slowLease
		case faultSplitBrain:
			f.hold = p.splitBrain
		case faultKillLeader:
		}
		f.at = max(f.at, next)
		next = f.at + f.takes() + gapAfter(f.kind)
		out[i] = f
	}
	return out
}

// takes is how long a fault keeps the run busy from its start to its recovery: its hold and
// what its injection waits for (a new leader, a restart, a process to stop).
func (f fault) takes() time.Duration {
	switch f.kind {
	case faultKillLeader:
		return 20 * time.Second
	case faultStopLeader:
		return f.hold + 20*time.Second
	case faultPostgres:
		return f.hold + 10*time.Second
	case faultAPIServer:
		return f.hold + 45*time.Second
	case faultSplitBrain:
		return f.hold + 15*time.Second
	case faultSlowLease:
		return f.hold + 5*time.Second
	}
	return f.hold
}

// gapAfter is the quiet time after a fault of kind recovered before the next one starts.
func gapAfter(kind faultKind) time.Duration {
	if isOutage(kind) {
		return outageGap
	}
	return minFaultGap
}

// faultDeadline is when the fault injection must be over (from the start of the chaos phase):
// the last planned fault's end with two minutes to spare. A fault it still cuts short, or
// prevents, is reported as such.
func faultDeadline(pl plan) time.Duration {
	if len(pl.faults) == 0 {
		return 0
	}
	last := pl.faults[len(pl.faults)-1]
	return last.at + last.takes() + 2*time.Minute
}
