package operator_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// metricName finds the names of taskpilot's own metrics where they are declared: a Name
// field of the options, or the first field of a row of the gauge tables.
var metricName = regexp.MustCompile(`(?:Name:\s*|\{)"(taskpilot_[a-z_]+)"`)

// TestEveryMetricIsDocumented: docs/operations.md lists every taskpilot_* metric the code
// declares, so that an operator on call finds what each means and when to alert on it.
func TestEveryMetricIsDocumented(t *testing.T) {
	root := kubetest.RepoRoot()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]string{}
	for _, dir := range []string{"controllers", "internal", "runner", "operator", "store"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range metricName.FindAllStringSubmatch(string(src), -1) {
				declared[m[1]] = path
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(declared) < 15 {
		t.Fatalf("found only %d metrics (%v): the pattern no longer matches how metrics are declared", len(declared), declared)
	}
	for name, path := range declared {
		if !strings.Contains(string(doc), "`"+name) {
			t.Errorf("%s (declared in %s) is not in docs/operations.md's metrics table", name, path)
		}
	}
}
