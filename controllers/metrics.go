package controllers

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/membership"
)

// registerRunnerMetrics exports the runner's gauges, read on each scrape.
func registerRunnerMetrics(reg prometheus.Registerer, stats func() engine.Stats) error {
	for _, g := range []struct {
		name, help string
		value      func(engine.Stats) float64
	}{
		{"taskpilot_runner_slots_in_use", "Runner slots held by running tasks (bounded by --max-concurrent-tasks).",
			func(s engine.Stats) float64 { return float64(s.SlotsInUse) }},
		{"taskpilot_runner_memory_reserved_bytes", "Memory reserved by admitted runs (bounded by --memory-budget).",
			func(s engine.Stats) float64 { return float64(s.MemoryInUse) }},
		{"taskpilot_runner_memory_budget_bytes", "The memory budget of admitted runs (0: none).",
			func(s engine.Stats) float64 { return float64(s.MemoryBudget) }},
		{"taskpilot_runner_abandoned_runs", "Goroutines of runs reported over (stopped, or failed after their timeout) that ignored cancellation and still run: Go cannot stop them.",
			func(s engine.Stats) float64 { return float64(s.Abandoned) }},
	} {
		value := g.value
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return value(stats()) })); err != nil {
			return err
		}
	}
	return nil
}

// registerEntryMetrics exports how many tasks each per-task memory of this process holds: once
// every task is deleted they are all 0 (the chaos run checks it), whatever happened before.
func registerEntryMetrics(reg prometheus.Registerer, index, journal, runner func() int) error {
	for component, count := range map[string]func() int{"index": index, "journal": journal, "runner": runner} {
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taskpilot_task_entries",
			Help:        "Tasks held in memory by a component of this process (index: the controllers' shared index; journal: the outbox; runner: runs, ended ones until forgotten).",
			ConstLabels: prometheus.Labels{"component": component}}, func() float64 { return float64(count()) })); err != nil {
			return err
		}
	}
	return nil
}

// registerBackendMetrics exports, per backend of the membership, whether it renewed the
// membership within the renew deadline and how long ago it last did: a degraded mode (the API
// server or PostgreSQL away while the other keeps the tasks running) shows as one of them at 0.
func registerBackendMetrics(reg prometheus.Registerer, m *membership.Member) error {
	for _, b := range []struct {
		name string
		of   func() membership.Backend
	}{
		{"kubernetes", func() membership.Backend { api, _ := m.Backends(); return api }},
		{"postgresql", func() membership.Backend { _, db := m.Backends(); return db }},
	} {
		of := b.of
		labels := prometheus.Labels{"backend": b.name}
		up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taskpilot_membership_backend_renewed",
			Help:        "1 when this backend (kubernetes: the membership Lease; postgresql: the membership row) renewed the membership within the renew deadline; the membership holds while either does.",
			ConstLabels: labels}, func() float64 {
			if of().Renewed {
				return 1
			}
			return 0
		})
		age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taskpilot_membership_backend_renewed_seconds_ago",
			Help:        "Seconds since this backend last renewed the membership (0 before the first renewal).",
			ConstLabels: labels}, func() float64 { return of().Since.Seconds() })
		if err := errors.Join(reg.Register(up), reg.Register(age)); err != nil {
			return err
		}
	}
	return nil
}
