package main

import (
	"strings"
	"testing"
)

func TestAQuickRunKeepsTheCommittedReport(t *testing.T) {
	if _, err := parseOptions([]string{"--quick", "--report", "docs/reliability.md"}); err == nil || !strings.Contains(err.Error(), "make chaos-quick") {
		t.Fatalf("a quick run asked to rewrite the committed report: err = %v", err)
	}
	if _, err := parseOptions([]string{"--quick", "--report", "bin/reliability-quick.md"}); err != nil {
		t.Fatalf("a quick run with its own report: %v", err)
	}
	if _, err := parseOptions([]string{"--report", "docs/reliability.md"}); err != nil {
		t.Fatalf("the full run: %v", err)
	}
}
