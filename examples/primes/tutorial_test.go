package primes_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tutorialModule is the module path the tutorial's reader creates (its step 1); the code here
// lives in this module instead.
const tutorialModule = "example.com/primes"

// TestTheTutorialIsThisCode: every Go block of docs/runner.md's tutorial that starts with a
// package clause is code of this package or of cmd/primes-operator: its lines appear, in order,
// in one of their files (which may have more: doc comments, more tests). So the tutorial a
// reader copies is code that builds and whose tests pass. Fragments (blocks without a package
// clause) illustrate and are not checked.
func TestTheTutorialIsThisCode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/runner.md")
	if err != nil {
		t.Fatal(err)
	}
	_, tutorial, ok := strings.Cut(string(doc), "## Write your own task type")
	if !ok {
		t.Fatal(`docs/runner.md has no "Write your own task type" section`)
	}
	var sources []string
	for _, f := range []string{"params.go", "task.go", "primes_test.go", "../cmd/primes-operator/main.go"} {
		b, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, strings.ReplaceAll(string(b), "github.com/taskpilot/taskpilot/examples/primes", tutorialModule))
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(tutorial, -1)
	checked := 0
	for _, b := range blocks {
		block := b[1]
		if !strings.HasPrefix(block, "package ") {
			continue
		}
		checked++
		if !anyContainsInOrder(sources, lines(block)) {
			t.Errorf("this tutorial block is not the code of examples/primes (or cmd/primes-operator):\n%s", block)
		}
	}
	if checked < 4 {
		t.Errorf("checked %d tutorial blocks, want the params, the task, its test and the operator's main", checked)
	}
}

// lines are a block's non-blank lines without their indentation.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// anyContainsInOrder reports whether one of the sources has every line of want, in order.
func anyContainsInOrder(sources []string, want []string) bool {
	for _, src := range sources {
		have, i := lines(src), 0
		for _, l := range have {
			if i < len(want) && l == want[i] {
				i++
			}
		}
		if i == len(want) {
			return true
		}
	}
	return false
}
