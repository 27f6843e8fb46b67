package witness

import (
	"context"
	"fmt"
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
