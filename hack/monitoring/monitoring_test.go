package monitoring

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"
)

// root is the module root, from this package's directory.
const root = "../.."

func TestTheGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Files()
	require.NoError(t, err)
	for _, f := range files {
		have, err := os.ReadFile(filepath.Join(root, f.Path))
		require.NoError(t, err, "run `make monitoring`")
		require.True(t, bytes.Equal(have, f.Data), "%s is stale: run `make monitoring` and review the diff", f.Path)
	}
}

// Every expression of the alerts and the dashboard parses, and names only taskpilot's metrics
// (test/alerts checks that a running operator exports each of them).
func TestEveryQueryParses(t *testing.T) {
	queries := Queries()
	require.Greater(t, len(queries), len(Alerts()), "the dashboard has queries too")
	for where, expr := range queries {
		names, err := MetricNames(expr)
		require.NoError(t, err, where)
		require.NotEmpty(t, names, where)
		for _, n := range names {
			require.True(t, strings.HasPrefix(n, "taskpilot_"), "%s reads %s", where, n)
		}
	}
	_, err := MetricNames(`rate(taskpilot_transitions_total[5m]`)
	require.Error(t, err, "a broken expression is caught")
	names, err := MetricNames(`histogram_quantile(0.9, rate(taskpilot_transition_commit_seconds_bucket[5m])) > on() taskpilot_tasks`)
	require.NoError(t, err)
	require.Equal(t, []string{"taskpilot_tasks", "taskpilot_transition_commit_seconds"}, names)
}

// The chart's rule groups load as Prometheus loads a rule file (what promtool check rules does).
func TestTheRuleGroupsLoadInPrometheus(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "charts/taskpilot/files/alert-groups.yaml"))
	require.NoError(t, err)
	groups, errs := rulefmt.Parse(data, false, model.UTF8Validation, Parser(), promslog.NewNopLogger())
	require.Empty(t, errs)
	require.Len(t, groups.Groups, 1)
	require.Len(t, groups.Groups[0].Rules, len(Alerts()))
}

// Each alert's runbook_url points at a section of docs/operations.md with what it means, what
// to check and what to do.
func TestEveryAlertHasARunbook(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs/operations.md"))
	require.NoError(t, err)
	heading := regexp.MustCompile(`(?m)^#### (Taskpilot[A-Za-z]+)\n`)
	sections := map[string]string{}
	idx := heading.FindAllSubmatchIndex(doc, -1)
	for i, m := range idx {
		end := len(doc)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		sections[string(doc[m[2]:m[3]])] = string(doc[m[1]:end])
	}
	for _, a := range Alerts() {
		body, ok := sections[a.Name]
		require.True(t, ok, "docs/operations.md has no runbook section #### %s", a.Name)
		require.True(t, strings.HasSuffix(a.RunbookURL(), "#"+strings.ToLower(a.Name)), "the anchor GitHub makes of the heading")
		for _, part := range []string{"**Means**", "**Check**", "**Do**"} {
			require.Contains(t, body, part, "runbook of %s", a.Name)
		}
	}
	require.Len(t, sections, len(Alerts()), "a runbook without an alert: remove it or add the alert")
}
