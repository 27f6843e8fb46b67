package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// footprintResult is scenario 6 at one size.
type footprintResult struct {
	n                          int
	idleRSS, rss               int64
	idleGoroutines, goroutines float64
	heapIdle, heap             float64 // go_memstats_heap_inuse_bytes
	setup                      time.Duration
	// heapTop is `go tool pprof -top` of the operator's in-use heap at the end (with
	// --pprof-bind-address): what holds the memory.
	heapTop string
}

func (f footprintResult) bytesPerTask() float64 { return float64(f.rss-f.idleRSS) / float64(f.n) }

// footprintSleep runs for a day and wakes every 10 s (pause point, progress, checkpoint).
const footprintSleep = `{"duration":"24h","tick":"10s"}`

func runFootprint(ctx context.Context, e *env, n int) (footprintResult, error) {
	res := footprintResult{n: n}
	st, err := e.newStage(ctx, fmt.Sprintf("footprint-%d", n), n+16)
	if err != nil {
		return res, err
	}
	defer func() { _ = st.close() }()
	const ns = "default"
	sleepCtx(ctx, 3*time.Second)
	if res.idleRSS, res.idleGoroutines, res.heapIdle, err = footprint(st); err != nil {
		return res, err
	}
	w := newPhaseWatcher()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go w.run(wctx, st.cp.client, ns)
	start := time.Now()
	// Paused runs are real runs parked in Yield: both halves start Running, then one half is
	// patched to Paused (a task created Paused stays Pending and holds no goroutine).
	running, paused := (n+1)/2, n/2
	spec := func(int) taskSpec {
		return taskSpec{taskName: "sleep", params: footprintSleep, state: v1alpha1.DesiredRunning}
	}
	if err := createTasks(ctx, st.cp.client, ns, "fr", running, e.opts.workers, spec); err != nil {
		return res, err
	}
	if err := createTasks(ctx, st.cp.client, ns, "fp", paused, e.opts.workers, spec); err != nil {
		return res, err
	}
	if err := waitAll(ctx, st, w, ns, fmt.Sprintf("footprint %d: start", n), n, v1alpha1.PhaseRunning, "RUNNING"); err != nil {
		return res, err
	}
	if _, err := patchState(ctx, st.cp.client, ns, "fp", paused, e.opts.workers, v1alpha1.DesiredPaused); err != nil {
		return res, err
	}
	err = waitFor(ctx, fmt.Sprintf("footprint %d: pause half", n), 10*time.Minute, func() (bool, string, error) {
		r, p := w.count(v1alpha1.PhaseRunning), w.count(v1alpha1.PhasePaused)
		return r == running && p == paused, fmt.Sprintf("CR Running %d/%d, Paused %d/%d", r, running, p, paused), nil
	})
	if err != nil {
		return res, err
	}
	res.setup = time.Since(start)
	stopWatch()
	sleepCtx(ctx, 5*time.Second)
	if res.rss, res.goroutines, res.heap, err = footprint(st); err != nil {
		return res, err
	}
	logf("footprint %d: RSS %.0f MiB (idle %.0f MiB), goroutines %.0f (idle %.0f), %.1f KiB/task",
		n, mib(res.rss), mib(res.idleRSS), res.goroutines, res.idleGoroutines, res.bytesPerTask()/1024)
	if st.op.pprofURL != "" {
		f := filepath.Join(st.dir, "operator.heap.pprof")
		if err := fetchToFile(ctx, st.op.pprofURL+"/heap", f); err != nil {
			logf("footprint %d: heap profile: %v", n, err)
		} else {
			res.heapTop = pprofHeapTop(f)
		}
	}
	return res, nil
}

func footprint(st *stage) (rss int64, goroutines, heap float64, err error) {
	if rss, err = rssBytes(st.op.pid()); err != nil {
		return
	}
	m, err := st.op.scrape()
	if err != nil {
		return
	}
	return rss, m.sum("go_goroutines", nil), m.sum("go_memstats_heap_inuse_bytes", nil), nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
