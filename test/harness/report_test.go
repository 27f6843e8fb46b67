package harness

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

func TestReportTable(t *testing.T) {
	text := strings.Join([]string{
		"# Report", "", "## Summary", "", "| a | b |", "|---|---|", "| 1 | 2 |", "",
		"### Detail", "", "| x |", "|---|", "", "## Machine", "", "| | |", "|---|---|", "| code | abc123, bin/op |", "",
	}, "\n")
	got := ReportTable(text, "Summary")
	if want := []string{"| a | b |", "|---|---|", "| 1 | 2 |"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ReportTable = %q, want %q", got, want)
	}
	if got := ReportTable(text, "Missing"); got != nil {
		t.Fatalf("no such heading: %q", got)
	}
	if got := ReportTable("## Empty\n\n## Next\n| a |\n", "Empty"); got != nil {
		t.Fatalf("a heading without a table of its own: %q", got)
	}
	if got := ReportCode(text); got != "abc123, bin/op" { // not a commit hash: left as it is
		t.Fatalf("ReportCode = %q", got)
	}
	abs := "| code | abc123, operator " + filepath.Join(kubetest.RepoRoot(), "bin", "op") + " |\n"
	if got := ReportCode(abs); got != "abc123, operator bin/op" {
		t.Fatalf("ReportCode of a report that named its operator by absolute path = %q", got)
	}
	if got := ReportCode("| code | 0000000, operator bin/op |\n"); got != "0000000 (not in this repository's history), operator bin/op" {
		t.Fatalf("ReportCode of a commit that is not in the history = %q", got)
	}
	head, err := exec.Command("git", "-C", kubetest.RepoRoot(), "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if sha := strings.TrimSpace(string(head)); ReportCode("| code | "+sha+", operator bin/op |\n") != sha+", operator bin/op" {
		t.Fatalf("a commit of the history is named as it is: %q", ReportCode("| code | "+sha+", operator bin/op |\n"))
	}
	if got := ReportCode("nothing"); got != "" {
		t.Fatalf("ReportCode = %q", got)
	}
}
