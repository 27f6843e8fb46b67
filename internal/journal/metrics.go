package journal

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// Metrics are the journal's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	tasksByStatus *prometheus.GaugeVec
	transitions   *prometheus.CounterVec
	reasons       *prometheus.CounterVec
	commitLatency prometheus.Histogram
	batchSize     prometheus.Histogram
	desired       *prometheus.HistogramVec
	rejected      *prometheus.CounterVec
	fenced        prometheus.Counter
	tracked       prometheus.Counter
}

// NewMetrics creates the journal's collectors, plus gauges of its backlog (transitions and
// bytes), and registers them.
func NewMetrics(reg prometheus.Registerer, backlog func() int, backlogBytes func() int64) (*Metrics, error) {
	m := &Metrics{
		tasksByStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "taskpilot_tasks",
			Help: "Tasks owned by this operator, by recorded status.",
		}, []string{"status"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskpilot_transitions_total",
			Help: "Lifecycle transitions committed to PostgreSQL, by from and to status.",
		}, []string{"from", "to"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskpilot_transitions_by_reason_total",
			Help: "Lifecycle transitions committed to PostgreSQL, by to status and reason (Stalled, PauseTimeout, DeadlineExceeded, RecordRejected, ...).",
		}, []string{"to", "reason"}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskpilot_transition_commit_seconds",
			Help:    "Time from a transition to its commit in PostgreSQL.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskpilot_transition_batch_size",
			Help:    "Transitions (of as many tasks) written to PostgreSQL in one statement.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		desired: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskpilot_desired_state_seconds",
			Help:    "From this operator seeing a change of spec.state to the commit of the transition that reaches it (Paused, Running, Stopped): the operator's share of a pause, resume or stop, with the wait for the task's next pause point and, for a resume, for a runner slot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"desired"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskpilot_rejected_writes_total",
			Help: "Writes PostgreSQL rejected for good (replaced by a RecordRejected failure or dropped), by kind.",
		}, []string{"kind"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taskpilot_fenced_tasks_total",
			Help: "Tasks whose write was refused because another operator process owns them now.",
		}),
		tracked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taskpilot_tasks_tracked_total",
			Help: "Tasks this process started to track (created, adopted or taken over): the tasks it processed, what memory per task is measured against.",
		}),
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "taskpilot_unrecorded_transitions",
		Help: "Transitions waiting to be written to PostgreSQL.",
	}, func() float64 { return float64(backlog()) })
	bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "taskpilot_unrecorded_bytes",
		Help: "Memory held by changes waiting to be written to PostgreSQL; past --journal-max-bytes, starts, pauses and resumes wait.",
	}, func() float64 { return float64(backlogBytes()) })
	// Every kind is exported from the start, at 0: a series born at its first increment is
	// one increase() cannot see, and a dashboard would show no data instead of none rejected.
	for _, kind := range writeKinds() {
		m.rejected.WithLabelValues(kind)
	}
	for _, c := range []prometheus.Collector{m.tasksByStatus, m.transitions, m.reasons, m.commitLatency, m.batchSize, m.desired, m.rejected, m.fenced, m.tracked, gauge, bytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) batchWritten(n int) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(n))
}

func (m *Metrics) desiredReached(d lifecycle.Desired, latency time.Duration) {
	if m == nil {
		return
	}
	m.desired.WithLabelValues(string(d)).Observe(latency.Seconds())
}

func (m *Metrics) committed(from, to lifecycle.Status, reason string, latency time.Duration) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(string(from), string(to)).Inc()
	m.reasons.WithLabelValues(string(to), reason).Inc()
	m.commitLatency.Observe(latency.Seconds())
	m.moved(from, to)
}

// moved keeps the per-status gauge: "" stands for not tracked.
func (m *Metrics) trackedOne() {
	if m != nil {
		m.tracked.Inc()
	}
}

func (m *Metrics) moved(from, to lifecycle.Status) {
	if m == nil || from == to {
		return
	}
	if from != "" {
		m.tasksByStatus.WithLabelValues(string(from)).Dec()
	}
	if to != "" {
		m.tasksByStatus.WithLabelValues(string(to)).Inc()
	}
}

func (m *Metrics) rejectedWrite(kind string) {
	if m != nil {
		m.rejected.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) fencedTask() {
	if m != nil {
		m.fenced.Inc()
	}
}
