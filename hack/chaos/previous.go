package main

import (
	"os"
	"regexp"
	"strings"
)

// previousRun is the invariants table of the report a run replaces, so that every report
// shows the before/after of the last change (the core it ran against, and what held then)
// without anyone editing the file by hand.
type previousRun struct {
	run        string   // "Run of 2026-11-28 16:47 UTC: **full** profile, ..."
	code       string   // the code row of the Machine table
	invariants []string // the table's lines, header included
}

var (
	runLine  = regexp.MustCompile(`(?m)^Run of .*$`)
	codeLine = regexp.MustCompile(`(?m)^\| code \| (.*) \|$`)
)

// readPreviousRun extracts the invariants table of an existing report; nil when there is none
// (or it has no table).
func readPreviousRun(path string) *previousRun {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	text := string(data)
	p := &previousRun{run: runLine.FindString(text)}
	if m := codeLine.FindStringSubmatch(text); m != nil {
		p.code = m[1]
	}
	_, rest, ok := strings.Cut(text, "\n## Invariants\n")
	if !ok {
		return nil
	}
	for _, line := range strings.Split(rest, "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		if strings.HasPrefix(line, "|") {
			p.invariants = append(p.invariants, line)
		}
	}
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
