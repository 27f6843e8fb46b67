package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// probeNamespace holds the leak probe's tasks, apart from the run's.
const probeNamespace = "chaos-probe"

// leakThreshold is the memory per task processed that breaks invariant 6: a replica that keeps
// a quarter of a KiB for every task it ran, once the task is deleted, leaks.
const leakThreshold = 256.0 // bytes per task

// replicaSample is one replica's memory and work at a quiet moment (every probe task deleted
// and its row closed).
type replicaSample struct {
	replica string
	pid     int
	heap    float64 // live heap right after forced GCs
	tracked float64 // taskpilot_tasks_tracked_total: tasks it processed so far
	entries float64 // taskpilot_task_entries summed: tasks still held in memory
}

// leakProbe is what the probe measured: per replica, the samples of each round and the slope
// of the live heap against the tasks processed, over the rounds after the first.
type leakProbe struct {
	tasksPerRound int
	rounds        [][]replicaSample // rounds[i]: every live replica after round i
	noise         map[string]float64
	slopes        map[string]float64 // bytes per task
	processed     map[string]float64 // tasks processed over the measured rounds
	err           error
}

// runLeakProbe runs rounds of n noop tasks through the fleet once the chaos is over: each round
// creates them, waits for them to finish, deletes them and waits for their rows to close, then
// samples every live replica. Round 0 fills what is filled once (pgx statement caches, the
// informers' maps at their peak size, metric label sets); the rounds after it process as many
// tasks again, so a replica whose live heap still grows with the tasks it processed keeps
// something per task. noop tasks send no Event, so the event broadcaster's cache of recent
// Events only shrinks meanwhile.
func runLeakProbe(ctx context.Context, e *env, n, rounds int) leakProbe {
	p := leakProbe{tasksPerRound: n}
	for round := range rounds {
		if err := probeRound(ctx, e, n, round); err != nil {
			p.err = fmt.Errorf("round %d: %w", round, err)
			return p
		}
		samples, err := sampleReplicas(ctx, e)
		if err != nil {
			p.err = fmt.Errorf("round %d: %w", round, err)
			return p
		}
		p.rounds = append(p.rounds, samples)
	}
	// The noise of a sample: the same replicas sampled again with nothing to do.
	p.noise = map[string]float64{}
	lo, hi := map[string]float64{}, map[string]float64{}
	for range 3 {
		sleepCtx(ctx, 2*time.Second)
		samples, err := sampleReplicas(ctx, e)
		if err != nil {
			p.err = fmt.Errorf("noise: %w", err)
			return p
		}
		for _, s := range samples {
			if _, ok := lo[s.replica]; !ok {
				lo[s.replica], hi[s.replica] = s.heap, s.heap
			}
			lo[s.replica], hi[s.replica] = math.Min(lo[s.replica], s.heap), math.Max(hi[s.replica], s.heap)
		}
	}
	for r := range lo {
		p.noise[r] = hi[r] - lo[r]
	}
	p.slopes, p.processed = heapSlopes(p.rounds[1:])
	return p
}

// probeRound creates n noop tasks, waits for them to finish, deletes them and waits until
// their rows are closed.
func probeRound(ctx context.Context, e *env, n, round int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				bt := &v1alpha1.BackgroundTask{
					ObjectMeta: metav1.ObjectMeta{Namespace: probeNamespace, Name: fmt.Sprintf("probe-%d-%04d", round, i)},
					Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "noop", Params: &runtime.RawExtension{Raw: []byte(`{}`)}},
				}
				if err := e.client.Create(ctx, bt); err != nil {
					select {
					case errs <- fmt.Errorf("create %s: %w", bt.Name, err):
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if err := waitUntil(ctx, 3*time.Minute, func() (bool, error) {
		crs, err := listCRs(ctx, e.client, probeNamespace)
		if err != nil {
			return false, nil //nolint:nilerr // a slow read; try again
		}
		for _, cr := range crs {
			if cr.phase != v1alpha1.PhaseFinished {
				return false, nil
			}
		}
		return len(crs) == n, nil
	}); err != nil {
		return fmt.Errorf("the probe's tasks did not finish: %w", err)
	}
	if err := deleteAll(ctx, e, probeNamespace, 2*time.Minute); err != nil {
		return err
	}
	return waitUntil(ctx, rowsClosedWithin, func() (bool, error) {
		var open int
		if err := e.db.QueryRow(ctx, `SELECT count(*) FROM background_tasks WHERE namespace = $1 AND deleted_at IS NULL`,
			probeNamespace).Scan(&open); err != nil {
			return false, nil //nolint:nilerr // try again
		}
		return open == 0, nil
	})
}

// sampleReplicas samples every live supervised replica once its task entries are back to 0
// (the last deletions reach the journal and the index a moment after the rows close), or after
// ten seconds with what is left.
func sampleReplicas(ctx context.Context, e *env) ([]replicaSample, error) {
	var out []replicaSample
	for _, r := range e.fleet.live() {
		op := r.current()
		var s replicaSample
		deadline := time.Now().Add(10 * time.Second)
		for {
			body, err := e.fleet.get(op.MetricsURL)
			if err != nil {
				return nil, fmt.Errorf("metrics of %s: %w", r.name, err)
			}
			s = replicaSample{replica: r.name, pid: op.PID(), entries: sumSeries(body, "taskpilot_task_entries")}
			s.tracked, _ = metricValue(body, "taskpilot_tasks_tracked_total")
			if s.entries == 0 || time.Now().After(deadline) {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		heap, err := liveHeap(e, op.PprofURL)
		if err != nil {
			return nil, fmt.Errorf("heap of %s: %w", r.name, err)
		}
		s.heap = heap
		out = append(out, s)
	}
	return out, nil
}

// heapSlopes fits, per replica, the live heap against the tasks it processed (least squares)
// over rounds, and returns the slope (bytes per task) and how many tasks the fit spans.
// Replicas that processed no task over the rounds (a standby) are left out.
func heapSlopes(rounds [][]replicaSample) (slopes, spans map[string]float64) {
	points := map[string][][2]float64{}
	for _, round := range rounds {
		for _, s := range round {
			points[s.replica] = append(points[s.replica], [2]float64{s.tracked, s.heap})
		}
	}
	slopes, spans = map[string]float64{}, map[string]float64{}
	for r, ps := range points {
		if len(ps) < 2 {
			continue
		}
		var mx, my float64
		for _, p := range ps {
			mx += p[0]
			my += p[1]
		}
		mx /= float64(len(ps))
		my /= float64(len(ps))
		var sxy, sxx float64
		for _, p := range ps {
			sxy += (p[0] - mx) * (p[1] - my)
			sxx += (p[0] - mx) * (p[0] - mx)
		}
		span := ps[len(ps)-1][0] - ps[0][0]
		if sxx == 0 || span <= 0 {
			continue
		}
		slopes[r], spans[r] = sxy/sxx, span
	}
	return slopes, spans
}

// checkMemory is invariant 6: after the run, with every task deleted, no replica holds anything
// of a task in memory (taskpilot_task_entries 0), and in the probe after it no replica's live
// heap grows with the tasks it processes (a slope under leakThreshold). Bounded caches fill in
// the probe's first round and stay full; what grows with every task is a leak. The heap before
// and after the run is reported, not judged: it measures which process survived the faults and
// how full the bounded caches are, not leaks.
func checkMemory(afterRun []replicaSample, p leakProbe, before, after memSample) result {
	r := result{id: "6", title: "no memory kept per task: nothing held of deleted tasks, no heap growth per task processed"}
	var parts []string
	for _, s := range afterRun {
		if s.entries > 0 {
			r.add("task entries left", example{task: "-", what: fmt.Sprintf("replica %s (pid %d) still holds %.0f task entries after every task was deleted",
				s.replica, s.pid, s.entries)})
		}
	}
	parts = append(parts, fmt.Sprintf("task entries after the run: %s", entriesText(afterRun)))
	switch {
	case p.err != nil:
		r.skipped = "the leak probe failed: " + p.err.Error()
		return r
	case len(p.slopes) == 0:
		r.skipped = "the leak probe measured no replica that processed tasks"
		return r
	}
	for _, name := range sortedKeys(p.slopes) {
		slope, span := p.slopes[name], p.processed[name]
		limit := p.noise[name] / span // the smallest slope a sample's noise lets the fit tell
		parts = append(parts, fmt.Sprintf("replica %s: %+.0f B per task over %.0f tasks (noise %s, so slopes under %.0f B/task are noise)",
			name, slope, span, kib(p.noise[name]), limit))
		if slope > leakThreshold && slope > limit {
			r.add("heap grows per task", example{task: "-", what: fmt.Sprintf("replica %s keeps %.0f B per task processed (threshold %.0f B)",
				name, slope, leakThreshold)})
		}
	}
	if before.heap > 0 && after.heap > 0 {
		parts = append(parts, fmt.Sprintf("leader heap before the load %s, after the run %s (×%.2f; reported, not judged)",
			mib(before.heap), mib(after.heap), after.heap/before.heap))
	}
	r.checked = fmt.Sprintf("%d probe rounds of %d noop tasks; %s", len(p.rounds), p.tasksPerRound, strings.Join(parts, "; "))
	return r
}

func entriesText(ss []replicaSample) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s %.0f", s.replica, s.entries))
	}
	return strings.Join(out, ", ")
}

func kib(b float64) string { return fmt.Sprintf("%.0f KiB", b/1024) }

// sumSeries sums every sample of a metric family in a text exposition.
func sumSeries(body, family string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, family)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(fields[0], &v); err == nil {
			sum += v
		}
	}
	return sum
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
