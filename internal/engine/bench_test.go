package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

// countSink counts Finished/Paused transitions and records when each key
// reached Paused; it is as cheap as the controller's outbox append.
type countSink struct {
	finished, paused atomic.Int64
	mu               sync.Mutex
	pausedAt         map[runner.Key]time.Time
}

func (s *countSink) Transition(t engine.Transition) {
	switch t.To {
	case lifecycle.Finished:
		s.finished.Add(1)
	case lifecycle.Paused:
		now := time.Now()
		s.mu.Lock()
		if s.pausedAt != nil {
			s.pausedAt[t.Key] = now
		}
		s.mu.Unlock()
		s.paused.Add(1)
	case lifecycle.Pending, lifecycle.Running, lifecycle.Failed, lifecycle.Stopped:
	}
}

// spinTask is CPU-bound work that yields after every small unit.
type spinTask struct{ runner.Base }

func (spinTask) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	for {
		if err := ctl.Yield(ctx); err != nil {
			return nil, err
		}
		runtime.Gosched()
	}
}

func benchRunner(b *testing.B, sink engine.Sink, maxConc int) *engine.Runner {
	reg := runner.NewRegistry()
	if err := builtin.Register(reg); err != nil {
		b.Fatal(err)
	}
	if err := registerRaw[spinName](reg, func(json.RawMessage) (runner.Task[json.RawMessage], error) { return spinTask{}, nil }); err != nil {
		b.Fatal(err)
	}
	r, err := engine.New(engine.Options{Registry: reg, Sink: sink, MaxConcurrent: maxConc, StopGrace: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Start(ctx); close(done) }()
	<-r.Started()
	b.Cleanup(func() { cancel(); <-done })
	return r
}

func waitCount(b *testing.B, c *atomic.Int64, n int64) {
	deadline := time.Now().Add(2 * time.Minute)
	for c.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("timed out: %d/%d", c.Load(), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkStartToFinish: 10,000 noop tasks from StartTask to Finished.
func BenchmarkStartToFinish(b *testing.B) {
	const n = 10_000
	sink := &countSink{}
	r := benchRunner(b, sink, 0)
	spec := engine.StartSpec{TaskName: "noop"}
	var total time.Duration
	round := 0
	for b.Loop() {
		start := time.Now()
		target := sink.finished.Load() + n
		for i := range n {
			if err := r.StartTask(runner.Key(fmt.Sprint(round, "-", i)), spec); err != nil {
				b.Fatal(err)
			}
		}
		waitCount(b, &sink.finished, target)
		total += time.Since(start)
		round++
	}
	b.ReportMetric(float64(n*round)/total.Seconds(), "tasks/s")
}

// BenchmarkPauseLatency: 1,000 running CPU-bound tasks yielding in a tight
// loop are all paused; latency is PauseTask call -> Paused transition.
func BenchmarkPauseLatency(b *testing.B) {
	const n = 1_000
	var all []float64
	for b.Loop() {
		sink := &countSink{pausedAt: map[runner.Key]time.Time{}}
		r := benchRunner(b, sink, n)
		keys := make([]runner.Key, n)
		for i := range n {
			keys[i] = runner.Key(fmt.Sprint("spin-", i))
			if err := r.StartTask(keys[i], engine.StartSpec{TaskName: "spin"}); err != nil {
				b.Fatal(err)
			}
		}
		requested := make([]time.Time, n)
		for i, k := range keys {
			requested[i] = time.Now()
			if err := r.PauseTask(k); err != nil {
				b.Fatal(err)
			}
		}
		waitCount(b, &sink.paused, n)
		sink.mu.Lock()
		for i, k := range keys {
			all = append(all, float64(sink.pausedAt[k].Sub(requested[i]))/float64(time.Millisecond))
		}
		sink.mu.Unlock()
		for _, k := range keys {
			_ = r.StopTask(k)
		}
	}
	slices.Sort(all)
	b.ReportMetric(all[len(all)/2], "p50-ms")
	b.ReportMetric(all[len(all)*99/100], "p99-ms")
}

// BenchmarkPausedTaskFootprint: memory per idle paused task, parked inside Yield (one
// goroutine each). A task that is paused in its record is not handed to the runner at all after
// an operator restart, so it costs nothing here until it is resumed.
func BenchmarkPausedTaskFootprint(b *testing.B) {
	const n = 10_000
	for _, mode := range []string{"parked-in-yield"} {
		b.Run(mode, func(b *testing.B) {
			var heapPer, stackPer, gPer float64
			for b.Loop() {
				sink := &countSink{}
				r := benchRunner(b, sink, n)
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				g0 := runtime.NumGoroutine()
				for i := range n {
					k := runner.Key(fmt.Sprint("p-", i))
					if err := r.StartTask(k, engine.StartSpec{TaskName: "spin"}); err != nil {
						b.Fatal(err)
					}
					if err := r.PauseTask(k); err != nil {
						b.Fatal(err)
					}
				}
				waitCount(b, &sink.paused, n)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heapPer = float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / n
				stackPer = float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / n
				gPer = float64(runtime.NumGoroutine()-g0) / n
				if st := r.Stats(); st.Paused != n || st.SlotsInUse != 0 {
					b.Fatalf("stats %+v", st)
				}
			}
			b.ReportMetric(heapPer, "heap-B/task")
			b.ReportMetric(stackPer, "stack-B/task")
			b.ReportMetric(heapPer+stackPer, "B/paused-task")
			b.ReportMetric(gPer, "goroutines/task")
		})
	}
}
