package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// bigParamsResult is scenario 6b: objects whose params are as large as the API server takes.
type bigParamsResult struct {
	n              int
	paramsBytes    int
	idleRSS, rss   int64
	heapIdle, heap float64
}

func (b bigParamsResult) bytesPerTask() float64 { return float64(b.rss-b.idleRSS) / float64(b.n) }

// bigParams is about 1.2 MB of params in 40 top-level fields of 30 KiB: what a tenant can store
// in one object (etcd takes 1.5 MiB) when the admission policy's per-value bound is not installed.
func bigParams() string {
	fields := map[string]string{}
	for i := range 40 {
		fields[fmt.Sprintf("f%02d", i)] = strings.Repeat("x", 30<<10)
	}
	raw, _ := json.Marshal(fields)
	return string(raw)
}

// runBigParams creates n Paused tasks (Pending, no run) with bigParams and measures what the
// operator keeps of them: the informer cache leaves params over 1 KiB out, so RSS should stay
// near idle whatever the params weigh.
func runBigParams(ctx context.Context, e *env, n int) (bigParamsResult, error) {
	params := bigParams()
	res := bigParamsResult{n: n, paramsBytes: len(params)}
	st, err := e.newStage(ctx, fmt.Sprintf("bigparams-%d", n), n+16)
	if err != nil {
		return res, err
	}
	defer func() { _ = st.close() }()
	const ns = "default"
	sleepCtx(ctx, 3*time.Second)
	if res.idleRSS, _, res.heapIdle, err = footprint(st); err != nil {
		return res, err
	}
	w := newPhaseWatcher()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go w.run(wctx, st.cp.client, ns)
	spec := func(int) taskSpec {
		return taskSpec{taskName: "sleep", params: params, state: v1alpha1.DesiredPaused}
	}
	// Few workers: each request carries 1.2 MB.
	if err := createTasks(ctx, st.cp.client, ns, "big", n, min(4, e.opts.workers), spec); err != nil {
		return res, err
	}
	if err := waitAll(ctx, st, w, ns, fmt.Sprintf("bigparams %d", n), n, v1alpha1.PhasePending, "PENDING"); err != nil {
		return res, err
	}
	stopWatch()
	sleepCtx(ctx, 5*time.Second)
	if res.rss, _, res.heap, err = footprint(st); err != nil {
		return res, err
	}
	logf("bigparams %d × %.1f MiB: RSS %.0f MiB (idle %.0f MiB), %.1f KiB/task", n, mib(int64(len(params))),
		mib(res.rss), mib(res.idleRSS), res.bytesPerTask()/1024)
	return res, nil
}
