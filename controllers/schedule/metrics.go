package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/store"
)

// metrics are the schedule controller's: what became of each slot, and how late the created
// ones were.
type metrics struct {
	slots *prometheus.CounterVec
	lag   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		slots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskpilot_schedule_slots_total",
			Help: "Slots of TaskSchedules recorded by this replica, by outcome (created, replaced, skipped, missed) and reason (Late, CatchUp, Suspended, Forbid, Refused, Replace; empty for a slot created in time).",
		}, []string{"outcome", "reason"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskpilot_schedule_firing_lag_seconds",
			Help:    "From a slot's time to the recording of its creating firing.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
	}
	if reg != nil {
		if err := errors.Join(reg.Register(m.slots), reg.Register(m.lag)); err != nil {
			return nil, fmt.Errorf("schedule metrics: %w", err)
		}
	}
	return m, nil
}

// recorded counts the firings a look recorded.
func (m *metrics) recorded(won []store.Firing, now time.Time) {
	for _, f := range won {
		m.slots.WithLabelValues(string(f.Outcome), reasonLabel(f.Reason)).Inc()
		if f.Outcome.Created() {
			m.lag.Observe(max(0, now.Sub(f.Slot).Seconds()))
		}
	}
}

// reasonLabel is the capitalised keyword a firing's reason starts with ("Forbid: x still
// active" is Forbid), so the label has a few values; "" when there is none.
func reasonLabel(reason string) string {
	word, _, ok := strings.Cut(reason, ":")
	if !ok || word == "" || !unicode.IsUpper([]rune(word)[0]) ||
		strings.IndexFunc(word, func(r rune) bool { return !unicode.IsLetter(r) }) >= 0 {
		return ""
	}
	return word
}
