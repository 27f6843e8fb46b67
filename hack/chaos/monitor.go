package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/witness"
)

// sample is one look of the convergence monitor.
type sample struct {
	at         time.Time
	leader     int // pid of the ready leader (0: none)
	mismatched int // tasks whose CR phase and row status disagree for more than a moment
	err        string
}

// converged: one ready leader, and every CR agrees with its row.
func (s sample) converged() bool { return s.err == "" && s.leader != 0 && s.mismatched == 0 }

// Settling allowances of the monitor: a transition this recent may not be in status yet, and a
// spec changed this recently may not have been acted on yet.
const (
	statusLag = 3 * time.Second
	specLag   = 5 * time.Second
)

// monitor samples convergence every 2 s, and every 30 s runs the cheap invariants (1 and 2)
// on what is recorded so far, so that a break shows while the run goes on.
type monitor struct {
	e  *env
	d  *driver
	mu sync.Mutex
	ss []sample
}

func (m *monitor) run(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	lastChecks := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := m.sample(ctx)
		m.mu.Lock()
		m.ss = append(m.ss, s)
		m.mu.Unlock()
		if time.Since(lastChecks) > 30*time.Second {
			lastChecks = time.Now()
			m.cheapChecks(ctx)
		}
	}
}

func (m *monitor) sample(ctx context.Context) sample {
	s := sample{at: time.Now()}
	if r, pid, ok := m.e.fleet.leader(); ok && r.current().Ready(m.e.fleet.http) {
		s.leader = pid
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Read from the API server, not an informer: after a long API server outage an informer
	// relists only after its back-off (up to a minute), which would be measured as lag here.
	var list v1alpha1.BackgroundTaskList
	if err := m.e.client.List(cctx, &list, client.InNamespace(namespace)); err != nil {
		s.err = "list: " + err.Error()
		return s
	}
	rows, err := readRows(cctx, m.e.db)
	if err != nil {
		s.err = err.Error()
		return s
	}
	for _, bt := range list.Items {
		uid := string(bt.UID)
		if !bt.DeletionTimestamp.IsZero() || m.d.recentlyChanged(uid, specLag) {
			continue
		}
		row, ok := rows[uid]
		if ok && s.at.Sub(row.lastAt) < statusLag {
			continue
		}
		if !ok || phaseStatus(bt.Status.Phase) != row.status {
			s.mismatched++
		}
	}
	return s
}

// cheapChecks logs what invariants 1 and 2 say about the record so far.
func (m *monitor) cheapChecks(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	rows, err := readRows(cctx, m.e.db)
	if err != nil {
		return
	}
	trans, err := readTransitions(cctx, m.e.db)
	if err != nil {
		return
	}
	execs, err := witness.Load(cctx, m.e.wdb)
	if err != nil {
		return
	}
	names := map[string]string{}
	for uid, r := range rows {
		names[uid] = r.name
	}
	r1 := checkNoDoubleRun(execs, names, func(time.Time) (string, string) { return "", "" }, func(int, time.Time, time.Time) bool { return false })
	r2 := checkHistory(trans, rows)
	m.e.log.Info("so far", "double runs", r1.broken, "history breaks", r2.broken, "tasks", len(rows))
}

// writeSamples saves the samples as a table in the work directory, for a closer look.
func writeSamples(path string, ss []sample, start time.Time) error {
	var b strings.Builder
	b.WriteString("seconds\tleader\tmismatched\terror\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "%.1f\t%d\t%d\t%s\n", s.at.Sub(start).Seconds(), s.leader, s.mismatched, s.err)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (m *monitor) samples() []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sample(nil), m.ss...)
}

// convergence fills in each fault's time to converge: from its recovery to the first converged
// sample before the next fault was injected (or the end of sampling).
func convergence(recs []faultRecord, ss []sample) {
	for i := range recs {
		until := time.Time{}
		if i+1 < len(recs) {
			until = recs[i+1].injected
		}
		for _, s := range ss {
			if s.at.Before(recs[i].recovered) {
				continue
			}
			if !until.IsZero() && s.at.After(until) {
				break
			}
			if s.err == "" && s.leader != 0 && (recs[i].fewest < 0 || s.mismatched < recs[i].fewest) {
				recs[i].fewest = s.mismatched
			}
			if s.converged() {
				recs[i].converged = s.at.Sub(recs[i].recovered)
				break
			}
		}
	}
}
