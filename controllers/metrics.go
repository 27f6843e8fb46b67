package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/runner"
)

// registerRunnerMetrics exports the runner's gauges, read on each scrape.
func registerRunnerMetrics(reg prometheus.Registerer, stats func() runner.Stats) error {
	for _, g := range []struct {
		name, help string
		value      func(runner.Stats) float64
	}{
		{"taskpilot_runner_slots_in_use", "Runner slots held by running tasks (bounded by --max-concurrent-tasks).",
			func(s runner.Stats) float64 { return float64(s.SlotsInUse) }},
		{"taskpilot_runner_memory_reserved_bytes", "Memory reserved by admitted runs (bounded by --memory-budget).",
			func(s runner.Stats) float64 { return float64(s.MemoryInUse) }},
		{"taskpilot_runner_memory_budget_bytes", "The memory budget of admitted runs (0: none).",
			func(s runner.Stats) float64 { return float64(s.MemoryBudget) }},
		{"taskpilot_runner_abandoned_runs", "Goroutines of runs reported over (stopped, or failed after their timeout) that ignored cancellation and still run: Go cannot stop them.",
			func(s runner.Stats) float64 { return float64(s.Abandoned) }},
	} {
		value := g.value
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return value(stats()) })); err != nil {
			return err
		}
	}
	return nil
}
