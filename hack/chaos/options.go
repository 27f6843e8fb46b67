package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// options are the command-line settings of one chaos run.
type options struct {
	seed     uint64
	quick    bool
	operator string // the chaos operator binary (test/witness/operator)
	report   string // markdown report to rewrite ("" : none)
	keep     bool   // keep the work directory (logs, data) after the run
	// sharded runs three replicas with --sharding (every one runs tasks) instead of two with
	// one leader running them all.
	sharded bool
	profile profile
}

// replicaNames are the supervised replicas of the run.
func (o options) replicaNames() []string {
	if o.sharded {
		return []string{"a", "b", "c"}
	}
	return []string{"a", "b"}
}

// mode says how the replicas share the work, for the report.
func (o options) mode() string {
	if o.sharded {
		return "three replicas with `--sharding` (each runs its share; the leader assigns them)"
	}
	return "two replicas with leader election (the leader takes the new tasks; each runs those it owns)"
}

// profile is the size and timing of a run; quick and full differ only here.
type profile struct {
	name  string
	tasks int
	// createOver spreads task creation over this long from the start of the chaos phase.
	createOver time.Duration
	// faultsFrom..faultsUntil is where the faults are spread in the chaos phase, each starting
	// later when the ones before take longer (planFaults); the user actions run from 5 s in
	// until faultsUntil.
	faultsFrom, faultsUntil time.Duration
	// actionsPerSecond is the rate of the driver's pause/resume/stop/restart/delete actions.
	actionsPerSecond float64
	faults           []faultKind
	// settle bounds the wait, from the last fault's recovery, for every task to reach what its
	// spec asks (invariant 4).
	settle time.Duration
	// splitBrain, pgDown, apiDown and slowLease are how long the rogue operator runs, PostgreSQL
	// and the API server stay down, and Lease requests are answered late.
	splitBrain, pgDown, apiDown, slowLease time.Duration
}

// probeRounds is how many rounds the leak probe runs (the first fills the bounded caches).
const probeRounds = 4

// probeTasks is how many tasks a leak probe round runs: 1,000 per replica that runs tasks (the
// leader, or each sharded replica), 150 in quick runs.
func (o options) probeTasks() int {
	switch {
	case o.quick:
		return 150
	case o.sharded:
		return 3000
	}
	return 1000
}

func fullProfile() profile {
	return profile{
		name: "full", tasks: 1000, createOver: 240 * time.Second,
		faultsFrom: 40 * time.Second, faultsUntil: 380 * time.Second, actionsPerSecond: 1.5,
		faults: []faultKind{faultKillLeader, faultKillLeader, faultKillLeader, faultStopLeader, faultStopLeader,
			faultPostgres, faultAPIServer, faultSlowLease, faultSplitBrain},
		settle: 240 * time.Second, splitBrain: 25 * time.Second,
		// A managed PostgreSQL failover, a control-plane upgrade, an overloaded control plane.
		pgDown: 2 * time.Minute, apiDown: 3 * time.Minute, slowLease: 40 * time.Second,
	}
}

func quickProfile() profile {
	return profile{
		name: "quick", tasks: 150, createOver: 20 * time.Second,
		faultsFrom: 8 * time.Second, faultsUntil: 38 * time.Second, actionsPerSecond: 1.5,
		faults: []faultKind{faultKillLeader, faultStopLeader, faultSplitBrain},
		settle: 75 * time.Second, splitBrain: 10 * time.Second,
		pgDown: 30 * time.Second, apiDown: 20 * time.Second, slowLease: 15 * time.Second,
	}
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var o options
	var tasks int
	var faults string
	fs.Uint64Var(&o.seed, "seed", 1, "Seed of the load, the user actions and the fault schedule (same seed, same run, timing noise aside).")
	fs.BoolVar(&o.quick, "quick", false, "Short run (about 2.5 minutes): 150 tasks, three faults (kill, freeze, split brain).")
	fs.StringVar(&o.operator, "operator", "bin/taskpilot-chaos", "The chaos operator binary (go build -o bin/taskpilot-chaos ./test/witness/operator).")
	fs.StringVar(&o.report, "report", "", "Markdown report to rewrite, e.g. docs/reliability.md (empty: terminal only).")
	fs.BoolVar(&o.sharded, "sharded", false, "Three replicas with --sharding, each running its share of the tasks, instead of two with one leader.")
	fs.BoolVar(&o.keep, "keep", false, "Keep the work directory (operator logs, PostgreSQL and etcd data) after the run.")
	fs.IntVar(&tasks, "tasks", 0, "Number of BackgroundTasks (default 1000; quick 150).")
	fs.StringVar(&faults, "faults", "", "Faults to inject instead of the profile's, comma separated, in any order (the seed shuffles them): kill, freeze, postgres, apiserver, slowlease, split.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.profile = fullProfile()
	if o.quick {
		o.profile = quickProfile()
		// The committed reports are full runs: a quick run must not overwrite one.
		if strings.HasPrefix(filepath.ToSlash(filepath.Clean(o.report)), "docs/") {
			return o, fmt.Errorf("--quick does not rewrite %s, the full run's report: run `make chaos-quick` (report in bin/)", o.report)
		}
	}
	if tasks < 0 {
		return o, errors.New("--tasks must not be negative")
	}
	if tasks > 0 {
		o.profile.tasks = tasks
	}
	if faults != "" {
		names := map[string]faultKind{"kill": faultKillLeader, "freeze": faultStopLeader, "postgres": faultPostgres,
			"apiserver": faultAPIServer, "slowlease": faultSlowLease, "split": faultSplitBrain}
		o.profile.faults = nil
		for _, f := range strings.Split(faults, ",") {
			k, ok := names[strings.TrimSpace(f)]
			if !ok {
				return o, fmt.Errorf("--faults: unknown fault %q", f)
			}
			o.profile.faults = append(o.profile.faults, k)
		}
	}
	return o, nil
}
