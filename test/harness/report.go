package harness

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// codeRow is the "| code | ... |" row of a report's machine table.
var codeRow = regexp.MustCompile(`(?m)^\| code \| (.*) \|$`)

// ReportTable returns the lines of the first Markdown table under the line "## heading" of a
// report that make bench or make chaos wrote (header and separator included), nil when there is
// none. Each of them shows the table of the report it replaces as its "before".
func ReportTable(text, heading string) []string {
	_, rest, ok := strings.Cut(text, "\n## "+heading+"\n")
	if !ok {
		return nil
	}
	var table []string
	for _, line := range strings.Split(rest, "\n") {
		switch {
		case strings.HasPrefix(line, "|"):
			table = append(table, line)
		case len(table) > 0 || strings.HasPrefix(line, "#"):
			return table
		}
	}
	return table
}

// ReportCode returns the code row of a report's machine table ("" when there is none).
func ReportCode(text string) string {
	if m := codeRow.FindStringSubmatch(text); m != nil {
		return markForeignCommit(relativeToRepo(m[1]))
	}
	return ""
}

// commitish is an abbreviated or full commit hash.
var commitish = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// markForeignCommit says so when the commit a report names (its first word) is not in this
// repository's history (a run of work that never landed), so that nobody looks for it.
func markForeignCommit(code string) string {
	sha, _, _ := strings.Cut(code, " ")
	sha = strings.TrimSuffix(sha, ",")
	if !commitish.MatchString(sha) || exec.Command("git", "-C", kubetest.RepoRoot(), "cat-file", "-e", sha+"^{commit}").Run() == nil {
		return code
	}
	return strings.Replace(code, sha, sha+" (not in this repository's history)", 1)
}

// relativeToRepo drops this checkout's path from s, so that a report names files as the
// repository does, wherever it ran.
func relativeToRepo(s string) string {
	return strings.ReplaceAll(s, kubetest.RepoRoot()+string(filepath.Separator), "")
}
