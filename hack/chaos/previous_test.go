package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPreviousRunKeepsTheReplacedInvariants(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reliability.md")
	if p := readPreviousRun(path); p != nil {
		t.Fatalf("no report yet: got %+v", p)
	}
	old := strings.Join([]string{
		"# Reliability: `make chaos`", "",
		"Run of 2026-11-28 16:47 UTC: **full** profile, **seed 1**, 1000 BackgroundTasks.", "",
		"## Invariants", "",
		"| # | invariant | verdict | counter-examples | checked |",
		"|---|---|---|---|---|",
		"| 1 | no double run | **BROKEN** | 180 | 1503 executions |", "",
		"### 1. no double run — broken", "",
		"| task | seq | what happened |", "|---|---|---|", "| t | 1 | x |", "",
		"## Machine", "", "| | |", "|---|---|", "| code | 379b6de, operator bin/taskpilot-chaos |", "",
	}, "\n")
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	p := readPreviousRun(path)
	if p == nil {
		t.Fatal("the table was not found")
	}
	if len(p.invariants) != 3 || !strings.Contains(p.invariants[2], "**BROKEN** | 180") {
		t.Errorf("invariants: %q (the counter-example tables must not be copied)", p.invariants)
	}
	var b strings.Builder
	writePrevious(func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }, p)
	for _, want := range []string{"code 379b6de, operator bin/taskpilot-chaos", "Run of 2026-11-28 16:47 UTC", "| 1 | no double run | **BROKEN** | 180"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("rendered section lacks %q:\n%s", want, b.String())
		}
	}
}
