package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// schedulesResult is scenario 9: n TaskSchedules that all fire at second 0 of every minute
// (the worst case: every slot of the cluster at once), measured over `minutes` slots.
type schedulesResult struct {
	n, minutes int
	firings    int
	// lag is slot -> its row recorded (after the child was created): how late a slot fires.
	lag dist
	// writes are the API writes of the measured slots (children, their status, the schedules'
	// status, history deletions, Events), per firing.
	writes          apiWrites
	writesPerFiring float64
	cpu             cpuShare
}

func runSchedules(ctx context.Context, e *env, n, minutes int) (*schedulesResult, error) {
	res := &schedulesResult{n: n, minutes: minutes}
	st, err := e.newStage(ctx, fmt.Sprintf("schedules-%d", n), 64)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	const ns = benchNamespace
	err = parallel(ctx, n, e.opts.workers, func(ctx context.Context, i int) error {
		ts := &v1alpha1.TaskSchedule{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("s-%05d", i)},
			Spec: v1alpha1.TaskScheduleSpec{Schedule: "0 * * * * *", SuccessfulHistoryLimit: ptr.To[int32](1),
				Template: v1alpha1.TaskTemplate{Spec: v1alpha1.BackgroundTaskSpec{TaskName: "noop", Params: &runtime.RawExtension{Raw: []byte(`{}`)}}}},
		}
		if err := st.cp.client.Create(ctx, ts); err != nil {
			return fmt.Errorf("create %s: %w", ts.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The first slot after creation is a warm-up (caches, connections); measure the next ones.
	first := time.Now().Truncate(time.Minute).Add(time.Minute)
	progressf("[schedules %d] warm-up slot %s", n, first.Format(time.TimeOnly))
	if err := waitSlotFired(ctx, st, first, n); err != nil {
		return nil, err
	}
	sleepCtx(ctx, time.Until(first.Add(50*time.Second))) // the warm-up children finished
	comps := benchComponents(st)
	cpuBefore := takeCPU(comps)
	apiBefore, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return nil, err
	}
	var lags []time.Duration
	for m := 1; m <= minutes; m++ {
		slot := first.Add(time.Duration(m) * time.Minute)
		progressf("[schedules %d] slot %s", n, slot.Format(time.TimeOnly))
		if err := waitSlotFired(ctx, st, slot, n); err != nil {
			return nil, err
		}
		rows, err := st.pool.Query(ctx, `/*bench*/ SELECT EXTRACT(EPOCH FROM recorded_at - slot)::float8 FROM background_task_firings WHERE slot = $1 AND NOT manual`, slot)
		if err != nil {
			return nil, fmt.Errorf("read the firings of %s: %w", slot, err)
		}
		for rows.Next() {
			var sec float64
			if err := rows.Scan(&sec); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read the firings of %s: %w", slot, err)
			}
			lags = append(lags, time.Duration(sec*float64(time.Second)))
		}
		rows.Close()
	}
	// Wait until the last slot's children finished and the next slot has not begun.
	sleepCtx(ctx, time.Until(first.Add(time.Duration(minutes)*time.Minute+50*time.Second)))
	apiAfter, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return nil, err
	}
	res.cpu = cpuDelta(cpuBefore, takeCPU(comps), comps)
	res.firings = len(lags)
	res.lag = summarize(lags)
	res.writes = writesFrom(apiAfter).minus(writesFrom(apiBefore))
	res.writesPerFiring = res.writes.total() / float64(max(res.firings, 1))
	logf("schedules %d: %d firings, lag p50 %v p99 %v, %.2f API writes per firing", n, res.firings, res.lag.p50, res.lag.p99, res.writesPerFiring)
	return res, nil
}

// waitSlotFired waits until n rows of slot are recorded.
func waitSlotFired(ctx context.Context, st *stage, slot time.Time, n int) error {
	return waitFor(ctx, "slot "+slot.Format(time.TimeOnly), 5*time.Minute, func() (bool, string, error) {
		var got int
		if err := st.pool.QueryRow(ctx, `/*bench*/ SELECT count(*) FROM background_task_firings WHERE slot = $1 AND NOT manual`, slot).
			Scan(&got); err != nil {
			return false, "", err
		}
		return got >= n, fmt.Sprintf("%d/%d recorded", got, n), nil
	})
}

func writeSchedules(b *strings.Builder, r *results) {
	s := r.schedules
	if s == nil {
		return
	}
	md := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	md("## 9. Schedules: %d TaskSchedules firing at second 0 of every minute", s.n)
	md("")
	md("Every schedule of the cluster fires at the same second (the worst case), each slot creating one `noop` BackgroundTask; successfulHistoryLimit 1, so from the second slot on each firing also deletes the previous child. The first slot after creation is a warm-up; %d slots are measured (%d firings). Lag is a slot's time to its row in `background_task_firings`, which is written after the child was created.", s.minutes, s.firings)
	md("")
	md("| firings | lag p50 | lag p90 | lag p99 | lag max | API writes per firing |")
	md("|---|---|---|---|---|---|")
	md("| %d | %s | %s | %s | %s | %.2f |", s.firings, ms(s.lag.p50), ms(s.lag.p90), ms(s.lag.p99), ms(s.lag.max), s.writesPerFiring)
	md("")
	md("API writes per firing, by kind:")
	md("")
	md("| write | per firing |")
	md("|---|---|")
	for _, k := range s.writes.keys() {
		md("| %s | %.2f |", k, s.writes[k]/float64(max(s.firings, 1)))
	}
	md("")
	writeCPU(b, s.cpu, s.firings)
}
