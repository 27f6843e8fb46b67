package journal

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
)

// Every kind of rejected write is exported at 0 from the start: alerts and dashboards read
// the metric before anything was ever rejected (test/alerts checks that it is exported).
func TestRejectedWritesAreExportedBeforeTheFirst(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, func() int { return 0 }, func() int64 { return 0 })
	require.NoError(t, err)
	require.Equal(t, len(writeKinds()), testutil.CollectAndCount(m.rejected, "taskpilot_rejected_writes_total"))
	for _, kind := range writeKinds() {
		require.Zero(t, testutil.ToFloat64(m.rejected.WithLabelValues(kind)), kind)
	}
	m.rejectedWrite(kindCheckpoint)
	require.InDelta(t, 1, testutil.ToFloat64(m.rejected.WithLabelValues(kindCheckpoint)), 0)
}

// taskpilot_desired_state_seconds counts a change of spec.state once the transition that
// reaches it commits, from the change: a pause, then a resume; a pause the run outran (it
// finished first) is not counted.
func TestDesiredStateIsMeasuredUntilItsTransitionCommits(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry(), func() int { return 0 }, func() int64 { return 0 })
	require.NoError(t, err)
	clk := clocktesting.NewFakeClock(time.Now())
	e := newEnv(t, 1, nil, func(o *Options) { o.Metrics, o.Clock = m, clk })
	count := func(d lifecycle.Desired) int { return int(histogramCount(t, m, d)) }
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.waitCommitted(t, "a", lifecycle.Running, 1)
	require.Zero(t, count(lifecycle.DesiredRunning), "created running: nothing changed")

	e.j.SetDesired("a", lifecycle.DesiredPaused)
	clk.Step(40 * time.Millisecond)
	e.run("a", lifecycle.Running, lifecycle.Paused, 1)
	e.waitCommitted(t, "a", lifecycle.Paused, 1)
	require.Equal(t, 1, count(lifecycle.DesiredPaused))
	require.InDelta(t, 0.040, histogramSum(t, m, lifecycle.DesiredPaused), 0.0001, "from the change to the commit")

	e.j.SetDesired("a", lifecycle.DesiredRunning)
	e.run("a", lifecycle.Paused, lifecycle.Running, 1)
	e.waitCommitted(t, "a", lifecycle.Running, 1)
	require.Equal(t, 1, count(lifecycle.DesiredRunning))

	e.j.SetDesired("a", lifecycle.DesiredPaused)
	e.run("a", lifecycle.Running, lifecycle.Finished, 1)
	e.waitCommitted(t, "a", lifecycle.Finished, 1)
	require.Equal(t, 1, count(lifecycle.DesiredPaused), "the run finished before it paused")
}

func histogramCount(t *testing.T, m *Metrics, d lifecycle.Desired) uint64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.desired.WithLabelValues(string(d)).(prometheus.Histogram).Write(&out))
	return out.GetHistogram().GetSampleCount()
}

func histogramSum(t *testing.T, m *Metrics, d lifecycle.Desired) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.desired.WithLabelValues(string(d)).(prometheus.Histogram).Write(&out))
	return out.GetHistogram().GetSampleSum()
}

// A change of spec.state that needs no transition, or one the task turns from before any
// follows, starts no measurement: a pause flipped back to Running, then a stall's
// Running -> Running an hour later, is not an hour-long resume; nor is a stop asked of a
// finished task, reached by a restart days later.
func TestDesiredStateCountsOnlyChangesThatATransitionFollows(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry(), func() int { return 0 }, func() int64 { return 0 })
	require.NoError(t, err)
	clk := clocktesting.NewFakeClock(time.Now())
	e := newEnv(t, 1, nil, func(o *Options) { o.Metrics, o.Clock = m, clk })
	e.track("a")
	e.run("a", "", lifecycle.Running, 1)
	e.waitCommitted(t, "a", lifecycle.Running, 1)

	e.j.SetDesired("a", lifecycle.DesiredPaused)
	e.j.SetDesired("a", lifecycle.DesiredRunning) // back before any pause was asked of the run
	clk.Step(time.Hour)
	e.run("a", lifecycle.Running, lifecycle.Running, 1, func(tr *engine.Transition) { tr.Reason = lifecycle.ReasonStalled })
	e.waitCommitted(t, "a", lifecycle.Running, 1)
	require.Zero(t, histogramCount(t, m, lifecycle.DesiredRunning))

	e.run("a", lifecycle.Running, lifecycle.Finished, 1)
	e.waitCommitted(t, "a", lifecycle.Finished, 1)
	e.j.SetDesired("a", lifecycle.DesiredStopped) // of a finished task: nothing follows
	clk.Step(24 * time.Hour)
	e.run("a", lifecycle.Finished, lifecycle.Stopped, 1)
	e.waitCommitted(t, "a", lifecycle.Stopped, 1)
	require.Zero(t, histogramCount(t, m, lifecycle.DesiredStopped))
}
