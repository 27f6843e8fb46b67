package main

import (
	"os"
	"regexp"
	"strings"

	"github.com/taskpilot/taskpilot/test/harness"
)

// previousRun is the invariants table of the report a run replaces, so that every report
// shows the before/after of the last change (the core it ran against, and what held then)
// without anyone editing the file by hand.
type previousRun struct {
	run        string   // "Run of 2026-11-28 16:47 UTC: **full** profile, ..."
	code       string   // the code row of the Machine table
	invariants []string // the table's lines, header included
}

// runLine is the report's "Run of ..." line.
var runLine = regexp.MustCompile(`(?m)^Run of .*$`)

// readPreviousRun extracts the invariants table of an existing report; nil when there is none
// (or it has no table).
func readPreviousRun(path string) *previousRun {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	text := string(data)
	p := &previousRun{run: runLine.FindString(text), code: harness.ReportCode(text), invariants: harness.ReportTable(text, "Invariants")}
	if len(p.invariants) < 3 {
		return nil
	}
	return p
}

// writePrevious renders the replaced run's invariants as the "before" of this one.
func writePrevious(md func(string, ...any), p *previousRun) {
	if p == nil {
		return
	}
	md("## Before and after: the previous run")
	md("")
	md("The invariants of the report this run replaced (code %s), for comparison with the table above.", orUnknown(p.code))
	md("%s", strings.TrimSpace(p.run))
	md("")
	for _, line := range p.invariants {
		md("%s", line)
	}
	md("")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
