package main

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"github.com/stretchr/testify/require"
)

// scrape is a piece of a real kube-apiserver and operator scrape: a counter with escaped label
// values, a histogram without its +Inf bucket written last, a gauge, a summary.
const scrape = `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="backgroundtasks",subresource="",verb="POST"} 1000
apiserver_request_total{code="200",resource="backgroundtasks",subresource="status",verb="PATCH"} 1010
apiserver_request_total{code="200",resource="backgroundtasks",subresource="",verb="PATCH"} 5
apiserver_request_total{code="200",resource="leases",subresource="",verb="PUT"} 7
apiserver_request_total{code="200",resource="backgroundtasks",subresource="",verb="LIST"} 3
apiserver_request_total{code="201",resource="events",subresource="",verb="POST",note="a \"quoted\", comma"} 2
# TYPE workqueue_queue_duration_seconds histogram
workqueue_queue_duration_seconds_bucket{name="backgroundtask",le="0.01"} 50
workqueue_queue_duration_seconds_bucket{name="backgroundtask",le="0.1"} 90
workqueue_queue_duration_seconds_bucket{name="backgroundtask",le="1"} 100
workqueue_queue_duration_seconds_bucket{name="backgroundtask",le="+Inf"} 100
workqueue_queue_duration_seconds_sum{name="backgroundtask"} 3.5
workqueue_queue_duration_seconds_count{name="backgroundtask"} 100
workqueue_queue_duration_seconds_bucket{name="backgroundtask-status",le="0.01"} 0
workqueue_queue_duration_seconds_bucket{name="backgroundtask-status",le="0.1"} 0
workqueue_queue_duration_seconds_bucket{name="backgroundtask-status",le="1"} 10
workqueue_queue_duration_seconds_bucket{name="backgroundtask-status",le="+Inf"} 10
workqueue_queue_duration_seconds_sum{name="backgroundtask-status"} 5
workqueue_queue_duration_seconds_count{name="backgroundtask-status"} 10
# TYPE go_goroutines gauge
go_goroutines 1093
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.001
go_gc_duration_seconds_sum 0.25
go_gc_duration_seconds_count 40
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(scrape))
	require.NoError(t, err)
	require.InDelta(t, 1093, m.sum("go_goroutines", nil), 0)
	require.InDelta(t, 1010, m.sum("apiserver_request_total", map[string]string{"verb": "PATCH", "subresource": "status"}), 0)
	require.InDelta(t, 2, m.sum("apiserver_request_total", map[string]string{"note": `a "quoted", comma`}), 0, "escaped label values")
	require.InDelta(t, 40, m.sum("go_gc_duration_seconds_count", nil), 0)
	require.InDelta(t, 0.001, m.sum("go_gc_duration_seconds", map[string]string{"quantile": "0.5"}), 0)

	w := writesFrom(m)
	require.InDelta(t, 1000+1010+5+7+2, w.total(), 0, "reads (LIST) are not writes")
	require.InDelta(t, 5, w.objectUpdates(), 0)
	require.InDelta(t, 1010, w.statusUpdates(), 0)
	require.InDelta(t, 2, w.events(), 0)
	require.Equal(t, "PATCH backgroundtasks/status", w.keys()[0], "largest first")

	all := m.histogram("workqueue_queue_duration_seconds")
	require.Equal(t, []bucket{{0.01, 50}, {0.1, 90}, {1, 110}, {math.Inf(1), 110}}, all, "summed over both queues")
	one := m.histogramWhere("workqueue_queue_duration_seconds", "name", "backgroundtask")
	require.Equal(t, []bucket{{0.01, 50}, {0.1, 90}, {1, 100}, {math.Inf(1), 100}}, one)

	_, err = parseMetrics(strings.NewReader("not a metric line {\n"))
	require.Error(t, err, "a broken scrape is an error, not an empty set")
}

func TestHistogramQuantileAndDelta(t *testing.T) {
	before := []bucket{{0.01, 10}, {0.1, 10}, {1, 10}, {math.Inf(1), 10}}
	after := []bucket{{0.01, 60}, {0.1, 100}, {1, 110}, {math.Inf(1), 110}}
	d := histDelta(after, before)
	require.Equal(t, []bucket{{0.01, 50}, {0.1, 90}, {1, 100}, {math.Inf(1), 100}}, d)
	require.InDelta(t, 0.01, histQuantile(0.5, d), 1e-9, "the 50th of 100 is the top of the first bucket")
	require.InDelta(t, 0.1+0.9*(99-90)/10.0, histQuantile(0.99, d), 1e-9, "linear inside a bucket, as PromQL does")
	require.True(t, math.IsNaN(histQuantile(0.5, nil)))
	require.InDelta(t, 1, histQuantile(1, []bucket{{1, 5}, {math.Inf(1), 6}}), 0, "a quantile in +Inf is the last finite bound")
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := summarize(ds)
	require.Equal(t, dist{n: 100, p50: 50 * time.Millisecond, p90: 90 * time.Millisecond, p99: 99 * time.Millisecond, max: 100 * time.Millisecond}, s)
	require.Equal(t, 100*time.Millisecond, ds[0], "the input is not reordered")
	require.Equal(t, dist{}, summarize(nil))
	require.Equal(t, dist{n: 1, p50: 7, p90: 7, p99: 7, max: 7}, summarize([]time.Duration{7}))
}

func TestProcessCPU(t *testing.T) {
	procs := []procStat{
		{pid: 1, ppid: 0, cpuTicks: 1000},
		{pid: 10, ppid: 1, cpuTicks: 5},
		{pid: 11, ppid: 10, cpuTicks: 7},
		{pid: 12, ppid: 10, cpuTicks: 11},
		{pid: 20, ppid: 1, cpuTicks: 100},
	}
	require.Equal(t, uint64(5+7+11), sumTree(procs, 10), "a process and its descendants")
	require.Zero(t, sumTree(procs, 99), "a process that is gone")

	busy, total := cpuTicks(procfs.CPUStat{User: 1, Nice: 0.5, System: 2, Idle: 10, Iowait: 1, IRQ: 0.25, SoftIRQ: 0.25, Steal: 1, Guest: 0.5})
	require.Equal(t, uint64(500), busy, "guest time is inside user time already")
	require.Equal(t, uint64(1600), total)

	self, err := readProcStat(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getppid(), self.ppid)
	require.GreaterOrEqual(t, self.cpuTicks, self.selfTicks)
}

func TestOptions(t *testing.T) {
	o, err := parseOptions(nil)
	require.NoError(t, err)
	require.Equal(t, []int{100, 1000, 5000}, o.sizes)
	require.Equal(t, []int{1000, 10000}, o.footprintN)
	require.Equal(t, 1000, o.pauseN)
	require.True(t, o.scenarios["sharding"] && o.scenarios["takeover"])

	q, err := parseOptions([]string{"--quick", "--scenarios", "pause,crash", "--operator-args", "--status-workers=4 --journal-writers=2"})
	require.NoError(t, err)
	require.Equal(t, []int{50, 200}, q.sizes)
	require.Equal(t, 100, q.pauseN)
	require.False(t, q.scenarios["lifecycle"])
	require.Equal(t, []string{"--status-workers=4", "--journal-writers=2"}, q.operatorArgs)

	_, err = parseOptions([]string{"--scenarios", "lifecycle,nope"})
	require.Error(t, err)
	_, err = parseOptions([]string{"--sizes", "10,x"})
	require.Error(t, err)
}
