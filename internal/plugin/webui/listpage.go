package webui

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// filter is the list page's query: ?ns=&phase=&type=&l=.
type filter struct {
	Namespace, Phase, Type, Selector string
}

func (f filter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"ns": f.Namespace, "phase": f.Phase, "type": f.Type, "l": f.Selector} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

type listPage struct {
	Scope, EventsURL, LiveURL string
	Filter                    filter
	SelectorError             string
	Namespaces, Types         []string
	Phases                    []string
	Rows                      []listRow
	Total                     int
	Chart                     PhaseChart
	ChartNote, ChartSpan      string
	// Queues are the TaskQueues in view (the namespace filter), QueueNote why they are not.
	Queues    []queueRow
	QueueNote string
}

type queueRow struct {
	Namespace, Name, State, Oldest          string
	Concurrency, Running, Pending, PausedIn int32
}

type listRow struct {
	Namespace, Name, Task, Desired, Phase, Progress, Age, URL string
	Attempt                                                   int32
}

// Phase chart window: the last hour, or less when every task in view is younger, sampled
// chartSamples times.
const (
	chartWindow  = time.Hour
	chartSamples = 60
)

func (s *Server) listPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := listPage{
		Scope:     s.opts.Scope,
		EventsURL: "/events",
		Filter:    filter{Namespace: q.Get("ns"), Phase: q.Get("phase"), Type: q.Get("type"), Selector: q.Get("l")},
		Phases:    phases(),
	}
	live := p.Filter.query()
	live.Set("fragment", "rows")
	p.LiveURL = "/?" + live.Encode()
	sel, err := labels.Parse(p.Filter.Selector)
	if err != nil {
		p.SelectorError = "label selector: " + err.Error()
		sel = labels.Nothing()
	}
	all := s.opts.Tasks.List()
	p.Total = len(all)
	var inNamespace []*v1alpha1.BackgroundTask // what the chart covers
	for _, t := range all {
		if p.Filter.Namespace == "" || t.Namespace == p.Filter.Namespace {
			inNamespace = append(inNamespace, t)
		}
		if !slices.Contains(p.Namespaces, t.Namespace) {
			p.Namespaces = append(p.Namespaces, t.Namespace)
		}
		if !slices.Contains(p.Types, t.Spec.TaskName) {
			p.Types = append(p.Types, t.Spec.TaskName)
		}
		if p.Filter.matches(t, sel) {
			p.Rows = append(p.Rows, s.row(t))
		}
	}
	slices.Sort(p.Types)
	if q.Get("fragment") == "rows" {
		s.render(w, "list", "rows", p)
		return
	}
	p.Chart, p.ChartSpan, p.ChartNote = s.phaseChart(r, p.Filter.Namespace, inNamespace)
	p.Queues, p.QueueNote = s.queues(r, p.Filter.Namespace)
	s.render(w, "list", "layout", p)
}

func (f filter) matches(t *v1alpha1.BackgroundTask, sel labels.Selector) bool {
	return (f.Namespace == "" || t.Namespace == f.Namespace) &&
		(f.Phase == "" || string(t.Status.Phase) == f.Phase) &&
		(f.Type == "" || t.Spec.TaskName == f.Type) &&
		sel.Matches(labels.Set(t.Labels))
}

func (s *Server) row(t *v1alpha1.BackgroundTask) listRow {
	return listRow{
		Namespace: t.Namespace, Name: t.Name, Task: t.Spec.TaskName, Desired: string(t.Spec.State),
		Phase: string(t.Status.Phase), Progress: t.Status.Progress, Attempt: t.Status.Attempt,
		Age: s.age(t.CreationTimestamp.Time),
		URL: "/tasks/" + url.PathEscape(t.Namespace) + "/" + url.PathEscape(t.Name),
	}
}

// phaseChart samples, from PostgreSQL, the last hour or since the oldest task in view was
// created if that is later, in the filter's namespace or else the view's.
func (s *Server) phaseChart(r *http.Request, namespace string, tasks []*v1alpha1.BackgroundTask) (PhaseChart, string, string) {
	if s.opts.History == nil {
		return PhaseChart{}, "", s.opts.HistoryNote
	}
	if namespace == "" {
		namespace = s.opts.Namespace
	}
	to := s.opts.Now() // the last sample is now, so a task created a moment ago shows at once
	from := to.Add(-chartWindow)
	oldest := to
	for _, t := range tasks {
		if c := t.CreationTimestamp.Time; c.Before(oldest) {
			oldest = c
		}
	}
	if oldest.After(from) {
		from = oldest.Add(-time.Second)
	}
	step := max(to.Sub(from)/chartSamples, time.Second).Round(time.Second)
	from = to.Add(-step * chartSamples)
	ctx, cancel := dbContext(r)
	defer cancel()
	counts, err := s.opts.History.PhaseCounts(ctx, namespace, from, to, step)
	if err != nil {
		return PhaseChart{}, "", "Cannot read the history: " + err.Error()
	}
	return buildPhaseChart(counts, from, to, step), duration.HumanDuration(to.Sub(from)), ""
}

// phases are the phase filter's choices.
func phases() []string {
	var out []string
	for _, s := range lifecycle.All() {
		out = append(out, s.Phase())
	}
	return out
}

// queues are the TaskQueues of namespace ("" : all in view), as their status says (what
// PostgreSQL holds, read by the elected operator every few seconds).
func (s *Server) queues(r *http.Request, namespace string) ([]queueRow, string) {
	if s.opts.Queues == nil {
		return nil, ""
	}
	if namespace == "" {
		namespace = s.opts.Namespace
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	list, err := s.opts.Queues.TaskQueues(ctx, namespace)
	if err != nil {
		return nil, "cannot list the TaskQueues: " + err.Error()
	}
	out := make([]queueRow, 0, len(list))
	for _, q := range list {
		row := queueRow{Namespace: q.Namespace, Name: q.Name, State: "admitting", Oldest: "-",
			Concurrency: q.Spec.Concurrency, Running: q.Status.Running, Pending: q.Status.Pending, PausedIn: q.Status.Paused}
		if meta.IsStatusConditionTrue(q.Status.Conditions, v1alpha1.ConditionPaused) {
			row.State = "paused"
			if q.Spec.PausedUntil != nil {
				row.State += " until " + q.Spec.PausedUntil.UTC().Format(time.RFC3339)
			}
		}
		if q.Status.OldestPendingSince != nil {
			row.Oldest = s.age(q.Status.OldestPendingSince.Time)
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b queueRow) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return out, ""
}
