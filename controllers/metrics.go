package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// Metrics are taskpilot's Prometheus metrics beyond controller-runtime's. A nil *Metrics is
// valid and records nothing (unit tests).
type Metrics struct {
	tasksByPhase  *prometheus.GaugeVec
	transitions   *prometheus.CounterVec
	commitLatency prometheus.Histogram
}

// NewMetrics creates the collectors and registers them, together with gauges reading the
// journal backlog and the runner's slots, with reg.
func NewMetrics(reg prometheus.Registerer, journal func() *Journal, stats func() runner.Stats) (*Metrics, error) {
	m := &Metrics{
		tasksByPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "taskpilot_tasks",
			Help: "Tasks tracked by this operator, by recorded status.",
		}, []string{"status"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskpilot_transitions_total",
			Help: "Lifecycle transitions, by from and to status.",
		}, []string{"from", "to"}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskpilot_transition_commit_seconds",
			Help:    "Time from a transition to its commit in PostgreSQL.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "taskpilot_unrecorded_transitions",
		Help: "Transitions and checkpoints waiting to be written to PostgreSQL.",
	}, func() float64 { return float64(journal().Backlog()) })
	slots := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "taskpilot_runner_slots_in_use",
		Help: "Runner slots held by running tasks (bounded by --max-concurrent-tasks).",
	}, func() float64 { return float64(stats().SlotsInUse) })
	for _, c := range []prometheus.Collector{m.tasksByPhase, m.transitions, m.commitLatency, backlog, slots} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) transition(from, to store.Status) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(string(from), string(to)).Inc()
	m.phaseChanged(from, to)
}

func (m *Metrics) phaseChanged(from, to store.Status) {
	if m == nil {
		return
	}
	if from != "" {
		m.tasksByPhase.WithLabelValues(string(from)).Dec()
	}
	if to != "" {
		m.tasksByPhase.WithLabelValues(string(to)).Inc()
	}
}

func (m *Metrics) recorded(latency time.Duration) {
	if m == nil {
		return
	}
	m.commitLatency.Observe(latency.Seconds())
}
