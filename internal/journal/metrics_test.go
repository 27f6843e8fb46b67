package journal

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
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
