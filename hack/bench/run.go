package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/taskpilot/taskpilot/test/harness"
)

// results collects every scenario's numbers for the report.
type results struct {
	started   time.Time
	wall      time.Duration
	machine   harness.Machine
	pgVersion string
	opts      options
	tempDir   string
	logPath   string
	pprof     bool
	lifecycle []lifecycleResult
	pause     *pauseResult
	crash     *crashResult
	takeover  *takeoverResult
	outage    *outageResult
	footprint []footprintResult
	bigParams *bigParamsResult
	sharding  []*shardingResult
	queue     *queueResult
	items     *itemsResult
	schedules *schedulesResult
	failures  []string
}

func run(ctx context.Context, opts options) (err error) {
	var cl cleanups
	defer func() { err = errors.Join(err, cl.run()) }()
	if _, err := os.Stat(opts.operator); err != nil {
		return fmt.Errorf("operator binary: %w (run `make build`)", err)
	}
	dir, err := os.MkdirTemp("", "taskpilot-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	e := &env{opts: opts, dir: dir, logPath: filepath.Join(dir, "operator.log"), pprof: hasPprofFlag(opts.operator)}
	logf("bench: temp dir %s (kept: logs, profiles); operator log %s", dir, e.logPath)
	if !e.pprof {
		logf("bench: %s has no --pprof-bind-address: no operator CPU profile", opts.operator)
	}
	r := &results{started: time.Now(), opts: opts, tempDir: dir, logPath: e.logPath, pprof: e.pprof}
	r.machine = harness.ReadMachine(opts.operator)
	progressf("starting PostgreSQL")
	if e.pg, err = startPostgres(ctx); err != nil {
		return err
	}
	cl.add(e.pg.close)
	r.pgVersion = e.pg.version

	scenarios := []struct {
		name string
		fn   func() error
	}{
		{"lifecycle", func() error {
			for i, n := range opts.sizes {
				lr, err := runLifecycle(ctx, e, n, i == len(opts.sizes)-1)
				if err != nil {
					return fmt.Errorf("lifecycle %d: %w", n, err)
				}
				r.lifecycle = append(r.lifecycle, lr)
			}
			return nil
		}},
		{"pause", func() error {
			pr, err := runPause(ctx, e, opts.pauseN)
			r.pause = pr
			return err
		}},
		{"crash", func() error {
			cr, err := runCrash(ctx, e, opts.crashN)
			r.crash = cr
			return err
		}},
		{"takeover", func() error {
			tr, err := runTakeover(ctx, e, opts.takeoverN)
			r.takeover = tr
			return err
		}},
		{"outage", func() error {
			or, err := runOutage(ctx, e, opts.outageN, opts.apiDown, opts.pgDown)
			r.outage = or
			return err
		}},
		{"footprint", func() error {
			for _, n := range opts.footprintN {
				fr, err := runFootprint(ctx, e, n)
				if err != nil {
					return fmt.Errorf("footprint %d: %w", n, err)
				}
				r.footprint = append(r.footprint, fr)
			}
			return nil
		}},
		{"bigparams", func() error {
			br, err := runBigParams(ctx, e, opts.bigParamsN)
			r.bigParams = &br
			return err
		}},
		{"schedules", func() error {
			sr, err := runSchedules(ctx, e, opts.schedulesN, opts.schedulesMinutes)
			r.schedules = sr
			return err
		}},
		{"queue", func() error {
			qr, err := runQueue(ctx, e, opts.queueN)
			r.queue = qr
			return err
		}},
		{"items", func() error {
			ir, err := runItems(ctx, e, opts.itemsN)
			r.items = ir
			return err
		}},
		{"sharding", func() error {
			for _, k := range []int{1, 3} {
				sr, err := runSharding(ctx, e, k, opts.shardingN, opts.shardingLong)
				if err != nil {
					return fmt.Errorf("sharding %d: %w", k, err)
				}
				r.sharding = append(r.sharding, sr)
			}
			return nil
		}},
	}
	for _, s := range scenarios {
		if !opts.scenarios[s.name] {
			continue
		}
		if err := s.fn(); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// Keep going: a failed scenario is reported, the others still run.
			logf("bench: scenario %s failed: %v", s.name, err)
			r.failures = append(r.failures, fmt.Sprintf("%s: %v", s.name, err))
		}
	}
	r.wall = time.Since(r.started)
	printSummary(os.Stdout, r)
	if opts.report != "" {
		if err := writeReport(opts.report, r); err != nil {
			return err
		}
		logf("bench: wrote %s", opts.report)
	}
	if len(r.failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed; see %s", len(r.failures), dir)
	}
	return nil
}
