package witness

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Mark is one recorded step.
type Mark struct {
	Step int
	At   time.Time
}

// Execution is one Run call as the witness recorded it.
type Execution struct {
	ID        string
	TaskUID   string
	Attempt   int
	PID       int
	Start     time.Time
	StartStep int // the step it resumed from (0: from scratch)
	Marks     []Mark
	Ended     bool
	End       time.Time
	Completed bool
	Detail    string
}

// BusyUntil is the end of the execution's busy interval: its completion, or its last mark (or
// its start when it did no step). See the package comment.
func (e Execution) BusyUntil() time.Time {
	if e.Ended && e.Completed {
		return e.End
	}
	if n := len(e.Marks); n > 0 {
		return e.Marks[n-1].At
	}
	return e.Start
}

// LastActivity is the time of its latest row of any kind.
func (e Execution) LastActivity() time.Time {
	t := e.Start
	if n := len(e.Marks); n > 0 && e.Marks[n-1].At.After(t) {
		t = e.Marks[n-1].At
	}
	if e.Ended && e.End.After(t) {
		t = e.End
	}
	return t
}

// Load reads every execution, grouped by task uid, each task's in order of start.
func Load(ctx context.Context, pool *pgxpool.Pool) (map[string][]Execution, error) {
	rows, err := pool.Query(ctx, `SELECT task_uid, attempt, exec_id, pid, kind, step, coalesce(completed, false), detail, at
FROM chaos_witness ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read the witness: %w", err)
	}
	defer rows.Close()
	byID := map[string]*Execution{}
	var order []*Execution
	for rows.Next() {
		var uid, id, kind, detail string
		var attempt, pid, step int
		var completed bool
		var at time.Time
		if err := rows.Scan(&uid, &attempt, &id, &pid, &kind, &step, &completed, &detail, &at); err != nil {
			return nil, fmt.Errorf("read the witness: %w", err)
		}
		e, ok := byID[id]
		if !ok {
			e = &Execution{ID: id, TaskUID: uid, Attempt: attempt, PID: pid, Start: at, StartStep: step}
			byID[id] = e
			order = append(order, e)
		}
		switch kind {
		case KindStart:
			e.Start, e.StartStep = at, step
		case KindMark:
			e.Marks = append(e.Marks, Mark{Step: step, At: at})
		case KindEnd:
			e.Ended, e.End, e.Completed, e.Detail = true, at, completed, detail
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the witness: %w", err)
	}
	out := map[string][]Execution{}
	for _, e := range order {
		out[e.TaskUID] = append(out[e.TaskUID], *e)
	}
	for _, es := range out {
		sortByStart(es)
	}
	return out, nil
}

func sortByStart(es []Execution) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Start.Before(es[j-1].Start); j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// Span is an interval of time [From, To).
type Span struct{ From, To time.Time }

// WorkSpans are the intervals a task did work in, from its executions: each step starts at
// its mark and lasts one interval (the step's work), or less when the execution ended sooner
// or marked its next step sooner (a planned failure right after its mark, a stop or a timeout
// cancelling the step's wait). A pause waits at the next pause point, after the step, so a
// paused run has no span. Overlapping spans (two executions at once: a double run, which
// the no-double-run checks report) are merged, so a task counts once at any instant.
func WorkSpans(es []Execution, interval time.Duration) []Span {
	var out []Span
	for _, e := range es {
		for i, m := range e.Marks {
			to := m.At.Add(interval)
			if i+1 < len(e.Marks) && e.Marks[i+1].At.Before(to) {
				to = e.Marks[i+1].At
			}
			if e.Ended && e.End.Before(to) {
				to = e.End
			}
			out = append(out, Span{m.At, to})
		}
	}
	slices.SortFunc(out, func(a, b Span) int { return a.From.Compare(b.From) })
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && !s.From.After(merged[n-1].To) {
			if s.To.After(merged[n-1].To) {
				merged[n-1].To = s.To
			}
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// AtOnce is a moment some tasks worked at once.
type AtOnce struct {
	At    time.Time
	Tasks int
	// Task is the task whose start made the count.
	Task string
}

// Peaks lists, for spans of several tasks (by task uid), every moment a task began to work,
// with how many were working then (a span that ends as another begins does not count with it).
func Peaks(spans map[string][]Span) []AtOnce {
	type edge struct {
		at    time.Time
		delta int
		uid   string
	}
	var edges []edge
	for uid, ss := range spans {
		for _, s := range ss {
			edges = append(edges, edge{s.From, 1, uid}, edge{s.To, -1, uid})
		}
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // ends first
	})
	var out []AtOnce
	n := 0
	for _, e := range edges {
		n += e.delta
		if e.delta > 0 {
			out = append(out, AtOnce{At: e.at, Tasks: n, Task: e.uid})
		}
	}
	return out
}
