package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// options are the command-line settings of one bench run.
type options struct {
	operator  string
	report    string
	quick     bool
	sizes     []int // lifecycle throughput sizes
	pauseN    int
	crashN    int
	takeoverN int
	// outageN tasks run through an API server outage of apiDown, then a PostgreSQL one of pgDown.
	outageN         int
	apiDown, pgDown time.Duration
	// operatorArgs are extra operator flags for every scenario (experiments: --status-workers=4).
	operatorArgs []string
	// shardingN noop tasks and shardingLong long tasks on 1 and on 3 replicas.
	shardingN, shardingLong int
	// schedulesN TaskSchedules firing every minute, measured over schedulesMinutes slots.
	schedulesN, schedulesMinutes int
	footprintN                   []int
	bigParamsN                   int // Paused tasks with 1.2 MB params
	queueN                       int // noop tasks with and without a TaskQueue
	itemsN                       int // no-op items of the one task of the items scenario
	workers                      int
	qps                          int
	burst                        int
	profileSec                   int
	crashStep                    time.Duration // countdown interval in the crash scenario (one checkpoint per step)
	scenarios                    map[string]bool
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var sizes, fps, scen string
	fs.StringVar(&o.operator, "operator", "bin/taskpilot", "Path of the operator binary to benchmark.")
	fs.StringVar(&o.report, "report", "", "Markdown report to (re)write, e.g. docs/benchmarks.md (empty: terminal only).")
	fs.BoolVar(&o.quick, "quick", false, "Smoke run with small sizes (for development).")
	fs.StringVar(&sizes, "sizes", "", "Lifecycle sizes, comma separated (default 100,1000,5000; quick 50,200).")
	fs.IntVar(&o.pauseN, "pause-n", 0, "Tasks in the pause-latency scenario (default 1000; quick 100).")
	fs.IntVar(&o.crashN, "crash-n", 0, "Tasks in the resume-after-crash scenario (default 1000; quick 100).")
	fs.IntVar(&o.takeoverN, "takeover-n", 0, "Tasks in the warm-standby takeover scenario (default 1000; quick 100).")
	fs.IntVar(&o.outageN, "outage-n", 0, "Tasks running through the outages scenario (default 1000; quick 100).")
	fs.DurationVar(&o.apiDown, "outage-api", 0, "How long the API server is down in the outages scenario (default 60s; quick 20s).")
	fs.DurationVar(&o.pgDown, "outage-pg", 0, "How long PostgreSQL is down in the outages scenario (default 60s; quick 20s).")
	var opArgs string
	fs.StringVar(&opArgs, "operator-args", "", "Extra operator flags for every scenario, space separated (experiments; the report shows them).")
	fs.IntVar(&o.schedulesN, "schedules-n", 0, "TaskSchedules firing every minute in the schedules scenario (default 1000; quick 100).")
	fs.IntVar(&o.schedulesMinutes, "schedules-minutes", 0, "Slots measured in the schedules scenario (default 2; quick 1).")
	fs.IntVar(&o.shardingN, "sharding-n", 0, "Noop tasks in the 1-vs-3-replicas scenario (default 1000; quick 100).")
	fs.IntVar(&o.shardingLong, "sharding-long", 0, "Long tasks running at once in the 1-vs-3-replicas scenario (default 600; quick 60).")
	fs.IntVar(&o.queueN, "queue-n", 0, "Noop tasks with and without a TaskQueue in the queue scenario (default 1000; quick 200).")
	fs.IntVar(&o.itemsN, "items-n", 0, "No-op items of the one task in the items scenario (default 100000; quick 10000).")
	fs.IntVar(&o.bigParamsN, "bigparams-n", 0, "Paused tasks with 1.2 MB params in the params-footprint scenario (default 300; quick 50).")
	fs.StringVar(&fps, "footprint", "", "Footprint sizes (default 1000,10000; quick 200).")
	fs.IntVar(&o.workers, "workers", 16, "Parallel API clients creating and patching tasks (and in the ceilings).")
	fs.IntVar(&o.qps, "kube-api-qps", 1000, "Operator's --kube-api-qps.")
	fs.IntVar(&o.burst, "kube-api-burst", 2000, "Operator's --kube-api-burst.")
	fs.IntVar(&o.profileSec, "profile-seconds", 0, "CPU profile length during the biggest lifecycle run (default 15; quick 3).")
	fs.DurationVar(&o.crashStep, "crash-interval", time.Second, "Countdown step (= checkpoint) interval in the crash scenario.")
	fs.StringVar(&scen, "scenarios", "lifecycle,pause,crash,takeover,outage,footprint,bigparams,queue,items,sharding,schedules", "Scenarios to run (lifecycle includes ceilings, cost and mirror lag).")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.operatorArgs = strings.Fields(opArgs)
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.pauseN, 1000, 100)
	def(&o.crashN, 1000, 100)
	def(&o.takeoverN, 1000, 100)
	def(&o.outageN, 1000, 100)
	for _, d := range []*time.Duration{&o.apiDown, &o.pgDown} {
		if *d == 0 {
			*d = 60 * time.Second
			if o.quick {
				*d = 20 * time.Second
			}
		}
	}
	def(&o.shardingN, 1000, 100)
	def(&o.schedulesN, 1000, 100)
	def(&o.schedulesMinutes, 2, 1)
	def(&o.shardingLong, 600, 60)
	def(&o.bigParamsN, 300, 50)
	def(&o.queueN, 1000, 200)
	def(&o.itemsN, 100000, 10000)
	def(&o.profileSec, 15, 3)
	var err error
	if o.sizes, err = intList(sizes, "100,1000,5000", "50,200", o.quick); err != nil {
		return o, fmt.Errorf("--sizes: %w", err)
	}
	if o.footprintN, err = intList(fps, "1000,10000", "200", o.quick); err != nil {
		return o, fmt.Errorf("--footprint: %w", err)
	}
	o.scenarios = map[string]bool{}
	for _, s := range strings.Split(scen, ",") {
		switch s = strings.TrimSpace(s); s {
		case "lifecycle", "pause", "crash", "takeover", "outage", "footprint", "bigparams", "queue", "items", "sharding", "schedules":
			o.scenarios[s] = true
		case "":
		default:
			return o, fmt.Errorf("--scenarios: unknown %q", s)
		}
	}
	if o.workers < 1 {
		return o, errors.New("--workers must be positive")
	}
	return o, nil
}

func intList(s, full, quick string, isQuick bool) ([]int, error) {
	if s == "" {
		s = full
		if isQuick {
			s = quick
		}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
