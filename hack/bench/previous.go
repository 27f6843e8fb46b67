package main

import (
	"os"
	"regexp"

	"github.com/taskpilot/taskpilot/test/harness"
)

// previousRun is the summary of the report this run replaces, so every report shows a
// before/after of the last change without anyone editing it by hand.
type previousRun struct {
	generated string // "2026-11-28 10:57 UTC"
	code      string // the code row: commit and operator
	summary   []string
}

// readPreviousRun extracts the summary table of an existing report (nil when there is none).
func readPreviousRun(path string) *previousRun {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	text := string(data)
	p := &previousRun{code: harness.ReportCode(text), summary: harness.ReportTable(text, "Summary")}
	if m := generatedLine.FindStringSubmatch(text); m != nil {
		p.generated = m[1]
	}
	if len(p.summary) < 3 {
		return nil
	}
	return p
}

// generatedLine finds when a report was generated.
var generatedLine = regexp.MustCompile(`(?m)on (\d{4}-\d\d-\d\d \d\d:\d\d \w+); the whole run`)

// writePrevious renders the previous run's summary as the "before" of this one.
func writePrevious(md func(string, ...any), p *previousRun) {
	if p == nil {
		return
	}
	md("## Before and after: the previous run")
	md("")
	md("The summary of the report this run replaced (generated %s, code %s), for comparison with the summary above. Ratios to the ceilings compare across runs; absolute numbers only roughly (shared machine).", p.generated, p.code)
	md("")
	for _, line := range p.summary {
		md("%s", line)
	}
	md("")
}
