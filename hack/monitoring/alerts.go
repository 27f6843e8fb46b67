// Package monitoring defines taskpilot's alerts, its ServiceMonitor and its Grafana dashboard
// in Go, from which hack/monitoring/gen writes config/monitoring/ and the chart's copies. Tests
// parse every PromQL expression, check that every metric they name is exported by a running
// operator, and evaluate the alerts over metrics recorded during real outages (test/alerts).
package monitoring

import (
	"fmt"
	"strings"
	"time"
)

// RunbookBase is where the runbooks are: one section of docs/operations.md per alert, whose
// anchor is the alert's name in lower case.
const RunbookBase = "https://github.com/taskpilot/taskpilot/blob/main/docs/operations.md#"

// Severities.
const (
	Critical = "critical" // page: tasks stop being recorded or run nowhere
	Warning  = "warning"  // ticket: something needs a look within the day
)

// Alert is one alerting rule.
type Alert struct {
	Name     string
	Expr     string
	For      time.Duration
	Severity string
	// Summary and Description are the annotations (Prometheus templates: {{ $labels.pod }}).
	Summary, Description string
}

// RunbookURL is the alert's section in docs/operations.md.
func (a Alert) RunbookURL() string { return RunbookBase + strings.ToLower(a.Name) }

// Alerts are taskpilot's alerts. Each `for` is chosen for a 30 s scrape interval; the
// expressions keep the target's labels (namespace, pod), so an alert names the replica.
func Alerts() []Alert {
	return []Alert{
		{
			Name: "TaskpilotDatabaseUnreachable", Severity: Critical, For: 2 * time.Minute,
			Expr:        `taskpilot_membership_backend_renewed{backend="postgresql"} == 0`,
			Summary:     "taskpilot replica {{ $labels.pod }} cannot reach PostgreSQL",
			Description: "Its membership row has not been renewed within the renew deadline for 2 minutes: transitions and checkpoints wait in memory, and past --journal-max-bytes starts, pauses and resumes wait too.",
		},
		{
			Name: "TaskpilotTransitionsNotRecorded", Severity: Critical, For: 2 * time.Minute,
			Expr:        `min_over_time(taskpilot_unrecorded_transitions[3m]) > 0`,
			Summary:     "taskpilot replica {{ $labels.pod }} has not recorded transitions for 5 minutes",
			Description: "{{ $value }} transitions have waited for PostgreSQL without the backlog ever emptying for 5 minutes: the row and the history lag behind what runs, and SQL users see stale states.",
		},
		{
			Name: "TaskpilotAPIServerUnreachable", Severity: Warning, For: 3 * time.Minute,
			Expr:        `taskpilot_membership_backend_renewed{backend="kubernetes"} == 0`,
			Summary:     "taskpilot replica {{ $labels.pod }} cannot renew its Lease",
			Description: "The API server has not renewed this replica's membership Lease within the renew deadline for 3 minutes. It keeps its tasks through PostgreSQL; statuses and Events are frozen.",
		},
		{
			Name: "TaskpilotReplicaWithoutMembership", Severity: Critical, For: time.Minute,
			Expr:        `max without (backend) (taskpilot_membership_backend_renewed) == 0`,
			Summary:     "taskpilot replica {{ $labels.pod }} is cut off from both PostgreSQL and the API server",
			Description: "Neither backend has renewed its membership for a minute: it stopped its tasks and restarted, and waits, not ready, to join again; another replica takes its tasks over once its membership expired.",
		},
		{
			Name: "TaskpilotFencedWrites", Severity: Warning,
			Expr:        risen(`taskpilot_fenced_tasks_total`, "10m", ""),
			Summary:     "taskpilot replica {{ $labels.pod }} wrote for tasks another process owns",
			Description: "{{ $value | humanize }} writes were refused in 10 minutes because another process had claimed the task (a split brain, a frozen or partitioned replica). Nothing was overwritten; the replica dropped those tasks.",
		},
		{
			Name: "TaskpilotTaskStalled", Severity: Warning,
			Expr:        risen(`taskpilot_transitions_by_reason_total{reason="Stalled"}`, "15m", ""),
			Summary:     "tasks on taskpilot replica {{ $labels.pod }} stalled",
			Description: "{{ $value | humanize }} tasks showed no sign of life (pause point, progress, checkpoint, heartbeat) for their spec.stallTimeout in 15 minutes.",
		},
		{
			Name: "TaskpilotMemoryBudgetSaturated", Severity: Warning, For: 10 * time.Minute,
			Expr:        `taskpilot_runner_memory_reserved_bytes / (taskpilot_runner_memory_budget_bytes > 0) > 0.95`,
			Summary:     "taskpilot replica {{ $labels.pod }} has used its memory budget for 10 minutes",
			Description: "Admitted runs reserve {{ $value | humanizePercentage }} of --memory-budget: new runs wait Pending for memory.",
		},
		{
			Name: "TaskpilotScheduleSlotsMissed", Severity: Warning,
			Expr:        risen(`taskpilot_schedule_slots_total{outcome="missed"}`, "30m", "reason"),
			Summary:     "TaskSchedule slots did not run",
			Description: "{{ $value | humanize }} slots were recorded missed in 30 minutes (Late, CatchUp or Refused): those runs did not happen.",
		},
		{
			Name: "TaskpilotDatabasePrivilegesMissing", Severity: Critical, For: 5 * time.Minute,
			Expr:        `taskpilot_database_missing_privileges > 0`,
			Summary:     "taskpilot replica {{ $labels.pod }} lacks PostgreSQL privileges",
			Description: "Its role lacks {{ $value }} privileges it needs: it stays up and not ready, and owns no task, until granted.",
		},
	}
}

// risen is "the counter grew within window": increase() > 0, or a series that was born with a
// positive value within the window (a labelled counter appears at its first increment, and a
// new pod's first scrape may already count some), which increase() cannot see. without, when
// set, is a label summed away first (one alert per replica, not per reason).
func risen(selector, window, without string) string {
	inc := "increase(" + selector + "[" + window + "])"
	born := selector + " > 0 unless " + selector + " offset " + window
	if without != "" {
		inc = "sum without (" + without + ") (" + inc + ")"
		born = "sum without (" + without + ") (" + born + ")"
	}
	return inc + " > 0 or " + born
}

// Validate checks what a PromQL parser cannot: every field is set and names are unique.
func Validate(alerts []Alert) error {
	seen := map[string]bool{}
	for _, a := range alerts {
		switch {
		case !strings.HasPrefix(a.Name, "Taskpilot"):
			return fmt.Errorf("alert %q: names start with Taskpilot", a.Name)
		case seen[a.Name]:
			return fmt.Errorf("alert %q defined twice", a.Name)
		case a.Expr == "" || a.Summary == "" || a.Description == "":
			return fmt.Errorf("alert %q: expression, summary and description are required", a.Name)
		case a.Severity != Critical && a.Severity != Warning:
			return fmt.Errorf("alert %q: severity %q is neither %s nor %s", a.Name, a.Severity, Critical, Warning)
		}
		seen[a.Name] = true
	}
	return nil
}
