package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/taskpilot/taskpilot/test/harness"
)

// memSample is the leader's memory at a quiet moment.
type memSample struct {
	replica    string
	pid        int
	uptime     time.Duration
	heap       float64 // live heap right after a forced GC (runtime.MemStats.HeapAlloc)
	rss        int64
	goroutines float64
}

// measureLeader forces garbage collections in the leader (pprof's heap?gc=1) and reads its live
// heap right after the last one (HeapAlloc as heap?gc=1&debug=1 prints it: a metrics scrape
// later would also count what background work allocated since, megabytes on a busy replica),
// goroutines and RSS. The live heap after GC is what a leak grows; RSS also holds
// memory the Go runtime keeps after a peak and returns to the OS only slowly, so it is reported
// but not judged. The last heap profile is kept in the run's directory as <label>-heap.pb.gz
// (`go tool pprof -top -sample_index=inuse_space`), to see what grew.
func measureLeader(ctx context.Context, e *env, label string) (memSample, error) {
	r, pid, err := e.fleet.waitLeader(ctx, time.Minute)
	if err != nil {
		return memSample{}, err
	}
	op := r.current()
	var profile string
	for range 2 {
		if profile, err = e.fleet.get(op.PprofURL + "/heap?gc=1"); err != nil {
			return memSample{}, fmt.Errorf("force a GC in the leader: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.dir, label+"-heap.pb.gz"), []byte(profile), 0o600); err != nil {
		e.log.Info("could not keep the heap profile", "error", err.Error())
	}
	text, err := e.fleet.get(op.PprofURL + "/heap?gc=1&debug=1")
	if err != nil {
		return memSample{}, fmt.Errorf("leader heap after a GC: %w", err)
	}
	m := memSample{replica: r.name, pid: pid, uptime: time.Since(op.Started)}
	if m.heap, err = heapAlloc(text); err != nil {
		return m, err
	}
	body, err := e.fleet.get(op.MetricsURL)
	if err != nil {
		return memSample{}, fmt.Errorf("leader metrics: %w", err)
	}
	m.goroutines, _ = metricValue(body, "go_goroutines")
	if m.rss, err = harness.RSS(pid); err != nil {
		return m, err
	}
	return m, nil
}

// checkMemory is invariant 6: the leader's live heap after the run (every task deleted) is
// within 1.5× of the leader's before the load (after a warm-up batch, also deleted).
func checkMemory(before, after memSample, beforeErr, afterErr error) result {
	r := result{id: "6", title: "operator memory after the run within 1.5× of before"}
	if beforeErr != nil || afterErr != nil {
		r.skipped = fmt.Sprintf("cannot measure: %v %v", beforeErr, afterErr)
		return r
	}
	ratio := after.heap / before.heap
	r.checked = fmt.Sprintf("live heap after GC %s -> %s (×%.2f); RSS %s -> %s; goroutines %.0f -> %.0f; measured in pid %d (up %s) and pid %d (up %s)",
		mib(before.heap), mib(after.heap), ratio, mib(float64(before.rss)), mib(float64(after.rss)),
		before.goroutines, after.goroutines, before.pid, before.uptime.Round(time.Second), after.pid, after.uptime.Round(time.Second))
	if ratio > 1.5 {
		r.add("heap grew", example{task: "-", what: fmt.Sprintf("live heap grew ×%.2f (%s -> %s)", ratio, mib(before.heap), mib(after.heap))})
	}
	return r
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// heapAlloc reads "# HeapAlloc = N" from a heap profile in text form (debug=1).
func heapAlloc(text string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("the heap profile has no HeapAlloc line")
}
