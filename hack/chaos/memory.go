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
	profile, err := e.fleet.get(op.PprofURL + "/heap?gc=1")
	if err != nil {
		return memSample{}, fmt.Errorf("force a GC in the leader: %w", err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, label+"-heap.pb.gz"), []byte(profile), 0o600); err != nil {
		e.log.Info("could not keep the heap profile", "error", err.Error())
	}
	m := memSample{replica: r.name, pid: pid, uptime: time.Since(op.Started)}
	if m.heap, err = liveHeap(e, op.PprofURL); err != nil {
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

// liveHeap forces garbage collections in an operator (pprof's heap?gc=1) and reads its live
// heap right after the last one (HeapAlloc as heap?gc=1&debug=1 prints it: a metrics scrape
// later would also count what background work allocated since).
func liveHeap(e *env, pprofURL string) (float64, error) {
	if _, err := e.fleet.get(pprofURL + "/heap?gc=1"); err != nil {
		return 0, fmt.Errorf("force a GC: %w", err)
	}
	text, err := e.fleet.get(pprofURL + "/heap?gc=1&debug=1")
	if err != nil {
		return 0, fmt.Errorf("heap after a GC: %w", err)
	}
	return heapAlloc(text)
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
