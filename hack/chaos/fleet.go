package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/taskpilot/taskpilot/test/harness"
)

// procRecord is one operator process the run started, for the report and the witness (which
// names processes by pid).
type procRecord struct {
	replica string
	pid     int
	started time.Time
	ended   time.Time // zero while running
	exit    string
	// leader is when the process was first seen leading (zero: never).
	leader time.Time
}

// replica is one operator slot. Supervised slots ("a", "b", and "c" when sharded) are
// restarted whenever their process exits, as a Deployment would; the rogue of a split brain is
// not.
type replica struct {
	name        string
	leaderElect bool
	supervised  bool
	mu          sync.Mutex
	proc        *harness.Operator
	frozen      bool
}

// fleet runs the operator processes and tells which one leads.
type fleet struct {
	log      logr.Logger
	binary   string
	sharded  bool // supervised replicas run with --sharding
	env      []string
	logDir   string
	http     *http.Client
	mu       sync.Mutex
	replicas []*replica
	procs    []*procRecord
	// supervisors restart replicas until the run's context ends; reapers record the exit of
	// unsupervised processes.
	supervisors, reapers sync.WaitGroup
}

func newFleet(log logr.Logger, binary, logDir string, sharded bool, env []string) *fleet {
	return &fleet{log: log, binary: binary, sharded: sharded, env: env, logDir: logDir, http: &http.Client{Timeout: time.Second}}
}

// start starts a replica's first process, waits until it is ready, and (for supervised ones)
// keeps restarting it until ctx ends.
func (f *fleet) start(ctx context.Context, name string, leaderElect, supervised bool) (*replica, error) {
	r := &replica{name: name, leaderElect: leaderElect, supervised: supervised}
	if err := f.launch(r); err != nil {
		return nil, err
	}
	if err := r.current().WaitReady(ctx, 60*time.Second); err != nil {
		return nil, fmt.Errorf("replica %s: %w (log %s)", name, err, f.logPath(name))
	}
	f.mu.Lock()
	f.replicas = append(f.replicas, r)
	f.mu.Unlock()
	if supervised {
		f.supervisors.Go(func() { f.supervise(ctx, r) })
	} else {
		f.reapers.Go(func() { f.reap(r, r.current()) })
	}
	return r, nil
}

func (f *fleet) logPath(name string) string { return filepath.Join(f.logDir, "operator-"+name+".log") }

// launch starts a new process for r.
func (f *fleet) launch(r *replica) error {
	op, err := harness.StartOperator(harness.OperatorSpec{
		Binary:  f.binary,
		Args:    operatorArgs(r.name, r.leaderElect, f.sharded && r.supervised),
		Env:     f.env,
		LogPath: f.logPath(r.name),
		Pprof:   true,
	})
	if err != nil {
		return err
	}
	rec := &procRecord{replica: r.name, pid: op.PID(), started: op.Started}
	r.mu.Lock()
	r.proc, r.frozen = op, false
	r.mu.Unlock()
	f.mu.Lock()
	f.procs = append(f.procs, rec)
	f.mu.Unlock()
	f.log.Info("operator started", "replica", r.name, "pid", rec.pid)
	return nil
}

// supervise restarts r's process whenever it exits: after 1 s, doubling up to 8 s while it
// keeps exiting within 30 s of its start (the API server or the database may still be down).
func (f *fleet) supervise(ctx context.Context, r *replica) {
	delay := time.Second
	for {
		op := r.current()
		select {
		case <-ctx.Done():
			return
		case <-op.Exited():
		}
		f.exited(r, op)
		if time.Since(op.Started) > 30*time.Second {
			delay = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 8*time.Second)
		if err := f.launch(r); err != nil {
			f.log.Error(err, "cannot restart replica", "replica", r.name)
		}
	}
}

// reap records the exit of an unsupervised process.
func (f *fleet) reap(r *replica, op *harness.Operator) {
	<-op.Exited()
	f.exited(r, op)
}

// exited records that op has exited (once; later calls do nothing).
func (f *fleet) exited(r *replica, op *harness.Operator) {
	r.mu.Lock()
	if r.proc == op {
		r.frozen = false
	}
	r.mu.Unlock()
	f.mu.Lock()
	var rec *procRecord
	for _, p := range f.procs {
		if p.pid == op.PID() && p.ended.IsZero() {
			rec = p
		}
	}
	if rec == nil {
		f.mu.Unlock()
		return
	}
	rec.ended = time.Now()
	rec.exit = "exit status 0"
	if err := op.ExitErr(); err != nil {
		rec.exit = err.Error()
	}
	f.mu.Unlock()
	f.log.Info("operator exited", "replica", r.name, "pid", rec.pid, "after", time.Since(rec.started).Round(time.Second).String(), "exit", rec.exit)
}

func (r *replica) current() *harness.Operator {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// signal sends sig to r's current process and tracks whether it is frozen.
func (r *replica) signal(sig syscall.Signal) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sig == syscall.SIGSTOP || sig == syscall.SIGCONT {
		r.frozen = sig == syscall.SIGSTOP
	}
	return r.proc.PID(), r.proc.Signal(sig)
}

// leader returns the replica whose live, unfrozen process reports that it holds the Lease
// (controller-runtime's leader_election_master_status gauge), when exactly one does.
func (f *fleet) leader() (*replica, int, bool) {
	f.mu.Lock()
	rs := append([]*replica(nil), f.replicas...)
	f.mu.Unlock()
	var found *replica
	pid, n := 0, 0
	for _, r := range rs {
		r.mu.Lock()
		op, frozen := r.proc, r.frozen
		r.mu.Unlock()
		if !r.leaderElect || frozen || exited(op) {
			continue
		}
		body, err := f.get(op.MetricsURL)
		if err != nil {
			continue
		}
		if v, ok := metricValue(body, `leader_election_master_status{name="`+leaseName+`"}`); ok && v == 1 {
			found, pid = r, op.PID()
			n++
		}
	}
	if n != 1 {
		return nil, 0, false
	}
	f.markLeader(pid)
	return found, pid, true
}

func (f *fleet) markLeader(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.procs {
		if p.pid == pid && p.leader.IsZero() {
			p.leader = time.Now()
		}
	}
}

// waitLeader waits up to timeout for a leader that is also ready.
func (f *fleet) waitLeader(ctx context.Context, timeout time.Duration) (*replica, int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if r, pid, ok := f.leader(); ok && r.current().Ready(f.http) {
			return r, pid, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("no single ready leader within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// alivePIDs are the pids of operator processes running now (frozen ones included).
func (f *fleet) alivePIDs() map[int]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]bool{}
	for _, p := range f.procs {
		if p.ended.IsZero() {
			out[p.pid] = true
		}
	}
	return out
}

// records returns a copy of every process record.
func (f *fleet) records() []procRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]procRecord, len(f.procs))
	for i, p := range f.procs {
		out[i] = *p
	}
	return out
}

// diedAt returns when each ended process ended, by pid.
func (f *fleet) diedAt() map[int]time.Time {
	out := map[int]time.Time{}
	for _, p := range f.records() {
		if !p.ended.IsZero() {
			out[p.pid] = p.ended
		}
	}
	return out
}

// stopAll thaws frozen processes and stops every process (SIGTERM, then SIGKILL); the caller
// has cancelled the supervisors' context first.
func (f *fleet) stopAll() {
	f.supervisors.Wait()
	f.mu.Lock()
	rs := append([]*replica(nil), f.replicas...)
	f.mu.Unlock()
	for _, r := range rs {
		op := r.current()
		if op == nil || exited(op) {
			continue
		}
		_ = op.Signal(syscall.SIGCONT)
		_ = op.Stop(15 * time.Second)
		f.exited(r, op)
	}
	f.reapers.Wait()
}

func exited(op *harness.Operator) bool {
	select {
	case <-op.Exited():
		return true
	default:
		return false
	}
}

// get fetches url's body.
func (f *fleet) get(url string) (string, error) {
	resp, err := f.http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// metricValue finds the sample named series (name plus labels exactly as exposed) in a
// Prometheus text exposition.
func metricValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// record returns the record of process pid.
func (f *fleet) record(pid int) (procRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.procs) - 1; i >= 0; i-- {
		if f.procs[i].pid == pid {
			return *f.procs[i], true
		}
	}
	return procRecord{}, false
}

// live returns the supervised replicas whose process runs and is not frozen.
func (f *fleet) live() []*replica {
	f.mu.Lock()
	rs := append([]*replica(nil), f.replicas...)
	f.mu.Unlock()
	var out []*replica
	for _, r := range rs {
		r.mu.Lock()
		ok := r.supervised && !r.frozen && r.proc != nil
		r.mu.Unlock()
		if ok {
			out = append(out, r)
		}
	}
	return out
}
