package operator

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskpilot/taskpilot/internal/version"
)

// buildInfo is the taskpilot_build_info gauge: always 1, its labels say which build runs, so a
// dashboard shows the versions of a fleet during a rolling upgrade and an alert can join on it.
func buildInfo(v version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "taskpilot_build_info",
		Help: "Which build runs: always 1; version and revision of the binary, the taskpilot version in it, the Go toolchain.",
		ConstLabels: prometheus.Labels{"version": v.Version, "revision": v.Revision, "taskpilot": v.Taskpilot,
			"goversion": v.GoVersion},
	})
	g.Set(1)
	return g
}
