// Command gen writes taskpilot's monitoring objects from package monitoring: the PrometheusRule,
// the ServiceMonitor and the Grafana dashboard under config/monitoring/, and the chart's copies
// of the alert groups and the dashboard under charts/taskpilot/files/. A test fails while they
// are stale; `make monitoring` rewrites them.
//
// Usage, from the module root:
//
//	go run ./hack/monitoring/gen          # rewrite the files
//	go run ./hack/monitoring/gen -check   # exit 1 and name the stale files
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/taskpilot/taskpilot/hack/monitoring"
)

func main() {
	check := flag.Bool("check", false, "compare instead of writing; exit 1 when a file is stale")
	flag.Parse()
	files, err := monitoring.Files()
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitoring:", err)
		os.Exit(1)
	}
	stale := false
	for _, f := range files {
		if *check {
			have, err := os.ReadFile(f.Path)
			if err != nil || !bytes.Equal(have, f.Data) {
				fmt.Fprintf(os.Stderr, "monitoring: %s is stale: run `make monitoring`\n", f.Path)
				stale = true
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "monitoring:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(f.Path, f.Data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "monitoring:", err)
			os.Exit(1)
		}
		fmt.Println("monitoring: wrote", f.Path)
	}
	if stale {
		os.Exit(1)
	}
}
