package webui

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/taskpilot/taskpilot/internal/taskdb"
)

type taskPage struct {
	Scope, EventsURL, LiveURL string
	Namespace, Name           string
	Missing                   bool

	TaskName, Desired, Phase, Progress, Message, Params, Age string
	Attempt                                                  int32
	RestartGeneration, ObservedRestartGeneration             int64

	Conditions  []condRow
	Events      []eventRow
	EventsNote  string
	Timeline    Timeline
	Transitions []taskdb.Transition
	HistoryNote string
}

type condRow struct{ Type, Status, Reason, Message, Age string }

type eventRow struct {
	Type, Reason, Message, Age string
	Count                      int32
}

func (s *Server) taskPage(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	key := ns + "/" + name
	p := taskPage{
		Scope: s.opts.Scope, Namespace: ns, Name: name,
		EventsURL: "/events?" + url.Values{"key": {key}}.Encode(),
		LiveURL:   "/tasks/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "?fragment=main",
	}
	ctx, cancel := dbContext(r)
	defer cancel()
	t, ok := s.opts.Tasks.Get(ns, name)
	if !ok {
		p.Missing = true
		p.HistoryNote = "Not in the cluster."
		w.WriteHeader(http.StatusNotFound)
	} else {
		st := t.Status
		p.TaskName, p.Desired, p.Phase = t.Spec.TaskName, string(t.Spec.State), string(st.Phase)
		p.Progress, p.Message, p.Attempt = st.Progress, st.Message, st.Attempt
		p.RestartGeneration, p.ObservedRestartGeneration = t.Spec.RestartGeneration, st.ObservedRestartGeneration
		p.Age = s.age(t.CreationTimestamp.Time)
		if t.Spec.Params != nil {
			p.Params = string(t.Spec.Params.Raw)
		}
		for _, c := range st.Conditions {
			p.Conditions = append(p.Conditions, condRow{Type: c.Type, Status: string(c.Status), Reason: c.Reason,
				Message: c.Message, Age: s.age(c.LastTransitionTime.Time)})
		}
		if evs, err := s.opts.Events.TaskEvents(ctx, t); err != nil {
			p.EventsNote = "Cannot list Events: " + err.Error()
		} else {
			p.Events = s.eventRows(evs)
		}
		s.history(ctx, &p, string(t.UID))
	}
	if r.URL.Query().Get("fragment") == "main" {
		s.render(w, "task", "main", p)
		return
	}
	s.render(w, "task", "layout", p)
}

// history fills the timeline and the transitions, or a note saying why there are none.
func (s *Server) history(ctx context.Context, p *taskPage, uid string) {
	if s.opts.History == nil {
		p.HistoryNote = s.opts.HistoryNote
		return
	}
	trs, err := s.opts.History.History(ctx, uid)
	if err != nil {
		p.HistoryNote = "Cannot read the history: " + err.Error()
		return
	}
	p.Transitions = trs
	p.Timeline = buildTimeline(trs, s.opts.Now())
	if len(trs) == 0 {
		p.HistoryNote = "Nothing recorded yet."
	}
}

// eventRows sorts Events newest first. Events written through events.k8s.io/v1 (as the
// operator does) carry eventTime and series instead of lastTimestamp and count.
func (s *Server) eventRows(evs []corev1.Event) []eventRow {
	type timed struct {
		row eventRow
		at  time.Time
	}
	var rows []timed
	for _, e := range evs {
		at, count := e.LastTimestamp.Time, e.Count
		if e.Series != nil {
			at, count = e.Series.LastObservedTime.Time, e.Series.Count
		}
		if at.IsZero() {
			at = e.EventTime.Time
		}
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		rows = append(rows, timed{eventRow{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: max(count, 1), Age: s.age(at)}, at})
	}
	slices.SortStableFunc(rows, func(a, b timed) int { return b.at.Compare(a.at) })
	out := make([]eventRow, 0, len(rows))
	for _, r := range rows {
		r.row.Message = strings.TrimSpace(r.row.Message)
		out = append(out, r.row)
	}
	return out
}
