package monitoring

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"k8s.io/utils/ptr"
)

// DashboardUID is the dashboard's stable UID (links to it survive a re-import).
const DashboardUID = "taskpilot-overview"

// Row is a titled row of panels.
type Row struct {
	Title  string
	Panels []Panel
}

// Panel is one graph (or a stat when Stat is set) and its queries.
type Panel struct {
	Title, Description, Unit string
	Stat                     bool
	Queries                  []Query
}

// Query is one PromQL query with its legend. It may use the dashboard's variables ($namespace,
// $pod) and $__rate_interval, which Grafana substitutes (see Substitute).
type Query struct {
	Expr, Legend string
}

// sel is the label selector every query applies: the dashboard's namespace and pod variables.
const sel = `namespace=~"$namespace", pod=~"$pod"`

// Rows are the dashboard's content: throughput and phases, the record's latency and backlog,
// each replica's load and membership, memory, queues, schedules.
func Rows() []Row {
	return []Row{
		{Title: "Tasks", Panels: []Panel{
			{Title: "Build", Stat: true, Description: "Replicas per taskpilot version (more than one for long: a stuck rollout).",
				Queries: []Query{{Expr: `count by (version) (taskpilot_build_info{` + sel + `})`, Legend: "{{version}}"}}},
			{Title: "Transitions by outcome", Unit: "ops", Description: "Transitions committed to PostgreSQL per second, by the status entered.",
				Queries: []Query{{Expr: `sum by (to) (rate(taskpilot_transitions_total{` + sel + `}[$__rate_interval]))`, Legend: "{{to}}"}}},
			{Title: "Tasks by status", Description: "Tasks the replicas own, by recorded status.",
				Queries: []Query{{Expr: `sum by (status) (taskpilot_tasks{` + sel + `})`, Legend: "{{status}}"}}},
			{Title: "Failures and stalls by reason", Unit: "ops",
				Queries: []Query{{Expr: `sum by (to, reason) (rate(taskpilot_transitions_by_reason_total{` + sel + `, reason=~"Error|PermanentError|Panic|DeadlineExceeded|Stalled|RecordRejected"}[$__rate_interval]))`, Legend: "{{to}} {{reason}}"}}},
		}},
		{Title: "Record (PostgreSQL)", Panels: []Panel{
			{Title: "Transition to commit latency", Unit: "s", Description: "From a transition in the runner to its commit in PostgreSQL.",
				Queries: []Query{
					{Expr: `histogram_quantile(0.5, sum by (le) (rate(taskpilot_transition_commit_seconds_bucket{` + sel + `}[$__rate_interval])))`, Legend: "p50"},
					{Expr: `histogram_quantile(0.99, sum by (le) (rate(taskpilot_transition_commit_seconds_bucket{` + sel + `}[$__rate_interval])))`, Legend: "p99"},
				}},
			{Title: "Unrecorded transitions", Description: "Transitions waiting for PostgreSQL, per replica (above 0 for minutes: the database is unreachable).",
				Queries: []Query{{Expr: `sum by (pod) (taskpilot_unrecorded_transitions{` + sel + `})`, Legend: "{{pod}}"}}},
			{Title: "Writes refused", Unit: "ops", Description: "Fenced (another process owns the task) and rejected (PostgreSQL refused for good).",
				Queries: []Query{
					{Expr: `sum by (pod) (rate(taskpilot_fenced_tasks_total{` + sel + `}[$__rate_interval]))`, Legend: "fenced {{pod}}"},
					{Expr: `sum by (pod, kind) (rate(taskpilot_rejected_writes_total{` + sel + `}[$__rate_interval]))`, Legend: "rejected {{kind}} {{pod}}"},
				}},
		}},
		{Title: "Replicas", Panels: []Panel{
			{Title: "Membership renewed", Description: "1 while each backend renewed the replica's membership within the renew deadline.",
				Queries: []Query{{Expr: `taskpilot_membership_backend_renewed{` + sel + `}`, Legend: "{{pod}} {{backend}}"}}},
			{Title: "Running slots in use", Description: "Runner slots held per replica (bounded by --max-concurrent-tasks).",
				Queries: []Query{{Expr: `sum by (pod) (taskpilot_runner_slots_in_use{` + sel + `})`, Legend: "{{pod}}"}}},
			{Title: "Memory budget used", Unit: "percentunit", Description: "Memory reserved by admitted runs over --memory-budget.",
				Queries: []Query{{Expr: `taskpilot_runner_memory_reserved_bytes{` + sel + `} / (taskpilot_runner_memory_budget_bytes{` + sel + `} > 0)`, Legend: "{{pod}}"}}},
			{Title: "Tasks per replica", Description: "Active tasks each replica owns (with --sharding: each one's share).",
				Queries: []Query{{Expr: `sum by (pod) (taskpilot_tasks{` + sel + `, status=~"PENDING|RUNNING|PAUSED"})`, Legend: "{{pod}}"}}},
		}},
		{Title: "Queues", Panels: []Panel{
			{Title: "Queue places taken", Description: "Tasks holding a place in each TaskQueue, against its concurrency (from PostgreSQL, by the elected replica).",
				Queries: []Query{
					{Expr: `max by (queue_namespace, queue) (taskpilot_queue_running{` + sel + `})`, Legend: "{{queue_namespace}}/{{queue}} running"},
					{Expr: `max by (queue_namespace, queue) (taskpilot_queue_concurrency{` + sel + `})`, Legend: "{{queue_namespace}}/{{queue}} concurrency"},
				}},
			{Title: "Queue waits", Unit: "s", Description: "Tasks waiting for a place, and how long the longest has waited.",
				Queries: []Query{
					{Expr: `max by (queue_namespace, queue) (taskpilot_queue_oldest_pending_seconds{` + sel + `})`, Legend: "{{queue_namespace}}/{{queue}} oldest wait"},
				}},
			{Title: "Queue starts", Unit: "ops", Description: "Starts each queue admitted per second.",
				Queries: []Query{{Expr: `max by (queue_namespace, queue) (deriv(taskpilot_queue_admitted{` + sel + `}[$__rate_interval]))`, Legend: "{{queue_namespace}}/{{queue}}"}}},
			{Title: "Tasks waiting for a queue", Description: "Tasks waiting for a place in each queue.",
				Queries: []Query{{Expr: `max by (queue_namespace, queue) (taskpilot_queue_pending{` + sel + `})`, Legend: "{{queue_namespace}}/{{queue}}"}}},
		}},
		{Title: "Schedules", Panels: []Panel{
			{Title: "Slots by outcome", Unit: "ops", Description: "TaskSchedule slots recorded: created, replaced, skipped, missed (by reason).",
				Queries: []Query{{Expr: `sum by (outcome, reason) (rate(taskpilot_schedule_slots_total{` + sel + `}[$__rate_interval]))`, Legend: "{{outcome}} {{reason}}"}}},
			{Title: "Firing lag", Unit: "s", Description: "From a slot's time to the recording of its child.",
				Queries: []Query{{Expr: `histogram_quantile(0.99, sum by (le) (rate(taskpilot_schedule_firing_lag_seconds_bucket{` + sel + `}[$__rate_interval])))`, Legend: "p99"}}},
		}},
	}
}

// Substitute replaces Grafana's variables in a dashboard query with values a PromQL parser and
// a test's evaluation accept: every namespace and pod, a one-minute rate window.
func Substitute(expr string) string {
	return strings.NewReplacer(`"$namespace"`, `".*"`, `"$pod"`, `".*"`, "$__rate_interval", "1m").Replace(expr)
}

// Dashboard builds the Grafana dashboard (JSON model) from Rows.
func Dashboard() ([]byte, error) {
	ds := common.DataSourceRef{Type: ptr.To("prometheus"), Uid: ptr.To("${datasource}")}
	b := newDashboard("taskpilot").
		Uid(DashboardUID).
		Description("taskpilot: tasks, their record in PostgreSQL, the replicas, queues, schedules. Generated by hack/monitoring; alerts and runbooks in docs/operations.md.").
		Tags([]string{"taskpilot", "kubernetes"}).
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(labelVariable("namespace", "Namespace", `label_values(taskpilot_build_info, namespace)`, ds)).
		WithVariable(labelVariable("pod", "Replica", `label_values(taskpilot_build_info{namespace=~"$namespace"}, pod)`, ds))
	for _, row := range Rows() {
		b = b.WithRow(dashboard.NewRowBuilder(row.Title))
		for _, p := range row.Panels {
			b = b.WithPanel(panel(p, ds))
		}
	}
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("build the dashboard: %w", err)
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode the dashboard: %w", err)
	}
	return append(out, '\n'), nil
}

// newDashboard starts the v1 JSON model (the SDK prefers dashboardv2): what Grafana's dashboard
// sidecar and import take on every Grafana version in use.
func newDashboard(title string) *dashboard.DashboardBuilder { //nolint:staticcheck // see above
	return dashboard.NewDashboardBuilder(title) //nolint:staticcheck // see above
}

func labelVariable(name, label, query string, ds common.DataSourceRef) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).Label(label).
		Query(dashboard.StringOrMap{String: ptr.To(query)}).
		Datasource(ds).Multi(true).IncludeAll(true).AllValue(".*").
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged)
}

func panel(p Panel, ds common.DataSourceRef) cog.Builder[dashboard.Panel] {
	if p.Stat {
		b := stat.NewPanelBuilder().Title(p.Title).Description(p.Description).Datasource(ds).Height(8).Span(12)
		for _, q := range p.Queries {
			b = b.WithTarget(prometheus.NewDataqueryBuilder().Expr(q.Expr).LegendFormat(q.Legend).Instant())
		}
		return b
	}
	b := timeseries.NewPanelBuilder().Title(p.Title).Description(p.Description).Datasource(ds).Height(8).Span(12).Min(0)
	if p.Unit != "" {
		b = b.Unit(p.Unit)
	}
	for _, q := range p.Queries {
		b = b.WithTarget(prometheus.NewDataqueryBuilder().Expr(q.Expr).LegendFormat(q.Legend))
	}
	return b
}

// Queries are every PromQL expression of the alerts and the dashboard, the dashboard's
// substituted, each with where it comes from.
func Queries() map[string]string {
	out := map[string]string{}
	for _, a := range Alerts() {
		out["alert "+a.Name] = a.Expr
	}
	for _, r := range Rows() {
		for _, p := range r.Panels {
			for i, q := range p.Queries {
				out[fmt.Sprintf("panel %q query %d", p.Title, i+1)] = Substitute(q.Expr)
			}
		}
	}
	return out
}
