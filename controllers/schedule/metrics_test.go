package schedule

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/store"
)

// TestSlotsAreCountedByOutcomeAndReason: each recorded slot counts once under its outcome and
// the keyword of its reason, and a created slot's lateness is observed.
func TestSlotsAreCountedByOutcomeAndReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	require.NoError(t, err)
	now := time.Date(2026, 12, 6, 12, 0, 30, 0, time.UTC)
	m.recorded([]store.Firing{
		{Outcome: store.FiringCreated, Slot: now.Add(-30 * time.Second), Reason: "created 30s after its slot"},
		{Outcome: store.FiringCreated, Slot: now},
		{Outcome: store.FiringMissed, Slot: now, Reason: "Forbid: nightly-1 still active (concurrencyPolicy Forbid)"},
		{Outcome: store.FiringMissed, Slot: now, Reason: "Late: 3m0s late, past its starting deadline of 1m0s (catchUp Skip)"},
		{Outcome: store.FiringSkipped, Slot: now, Reason: "Suspended: spec.suspend is true"},
	}, now)
	require.InDelta(t, 2, counter(t, m.slots.WithLabelValues("created", "")), 0)
	require.InDelta(t, 1, counter(t, m.slots.WithLabelValues("missed", "Forbid")), 0)
	require.InDelta(t, 1, counter(t, m.slots.WithLabelValues("missed", "Late")), 0)
	require.InDelta(t, 1, counter(t, m.slots.WithLabelValues("skipped", "Suspended")), 0)
	var lag dto.Metric
	require.NoError(t, m.lag.Write(&lag))
	require.EqualValues(t, 2, lag.GetHistogram().GetSampleCount(), "both created slots")
	require.InDelta(t, 30, lag.GetHistogram().GetSampleSum(), 0.001)
	require.Equal(t, "", reasonLabel("created by an earlier look that did not record it"))
	require.Equal(t, "", reasonLabel("a: b"), "a keyword is capitalised")
	require.Equal(t, "", reasonLabel("Not one: b"), "a keyword is one word")
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
