package witness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskpilot/taskpilot/runner"
)

// ItemsTaskType is the name the witness items task type is registered under: a task with
// items (spec.items) whose every item execution is recorded in chaos_witness_items.
const ItemsTaskType = "witness-items"

// ItemsParams are the params of a witness items task: each item takes Interval.
type ItemsParams struct {
	Interval runner.Duration `json:"interval"` // required, > 0
}

// TaskName names the witness items task type.
func (ItemsParams) TaskName() string { return ItemsTaskType }

// Validate checks what the JSON types cannot.
func (p ItemsParams) Validate() error {
	if p.Interval <= 0 {
		return errors.New(`"interval" is required and must be positive`)
	}
	return nil
}

// itemsSchemaSQL creates the items witness table: a start row before an item's work, an end
// row after it (completed: the work was done; false: it was cut short by its ctx).
const itemsSchemaSQL = `
CREATE TABLE IF NOT EXISTS chaos_witness_items (
    task_uid  text        NOT NULL,
    idx       integer     NOT NULL,
    exec_id   text        NOT NULL,
    pid       integer     NOT NULL,
    kind      text        NOT NULL CHECK (kind IN ('start', 'end')),
    completed boolean,
    at        timestamptz NOT NULL,
    UNIQUE (exec_id, kind)
);
CREATE INDEX IF NOT EXISTS chaos_witness_items_task_idx ON chaos_witness_items (task_uid, idx)`

type itemsTask struct {
	p   ItemsParams
	rec *Recorder
}

// RegisterItems adds the witness items task type, recording through rec, to reg.
func RegisterItems(reg *runner.Registry, rec *Recorder) error {
	return runner.RegisterItems(reg, "Records every execution of every item (the chaos run's witness of items)",
		func(p ItemsParams) (runner.ItemTask[struct{}], error) { return &itemsTask{p: p, rec: rec}, nil })
}

// RunItem records its start, works for the interval (cut short by ctx), and records its end.
func (t *itemsTask) RunItem(ctx context.Context, ctl runner.ItemControl, item runner.Item[struct{}]) error {
	id := fmt.Sprintf("%d-%x-i%d", t.rec.pid, t.rec.boot, t.rec.execs.Add(1))
	uid := string(ctl.Key())
	if err := t.rec.insertItemUntil(ctx, uid, item.Index, id, KindStart, nil); err != nil {
		return err
	}
	timer := time.NewTimer(time.Duration(t.p.Interval))
	defer timer.Stop()
	completed := true
	select {
	case <-timer.C:
	case <-ctx.Done():
		completed = false
	}
	// As for a run: a completion is on record before the item may be recorded succeeded.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	if !completed {
		ectx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	}
	defer cancel()
	if err := t.rec.insertItemUntil(ectx, uid, item.Index, id, KindEnd, &completed); err != nil {
		return err
	}
	if !completed {
		return context.Cause(ctx)
	}
	return nil
}

// insertItemUntil writes one item row, retrying with backoff until it succeeds or ctx ends
// (execUntil, as the task rows).
func (r *Recorder) insertItemUntil(ctx context.Context, uid string, idx int, id, kind string, completed *bool) error {
	const insertSQL = `INSERT INTO chaos_witness_items (task_uid, idx, exec_id, pid, kind, completed, at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (exec_id, kind) DO UPDATE SET at = greatest(chaos_witness_items.at, EXCLUDED.at), completed = EXCLUDED.completed`
	return r.execUntil(ctx, insertSQL, func() []any { return []any{uid, idx, id, r.pid, kind, completed, time.Now()} })
}

// ItemExecution is one execution of one item as the witness recorded it.
type ItemExecution struct {
	ID        string
	PID       int
	Start     time.Time
	Ended     bool
	End       time.Time
	Completed bool
}

// LoadItems reads every item execution of every task: task uid -> item index -> executions,
// by start.
func LoadItems(ctx context.Context, pool *pgxpool.Pool) (map[string]map[int][]ItemExecution, error) {
	rows, err := pool.Query(ctx, `SELECT task_uid, idx, exec_id, pid, kind, coalesce(completed, false), at
FROM chaos_witness_items ORDER BY task_uid, idx, at`)
	if err != nil {
		return nil, fmt.Errorf("read the items witness: %w", err)
	}
	defer rows.Close()
	type key struct {
		uid string
		id  string
	}
	execs := map[key]*ItemExecution{}
	where := map[key][2]any{}
	for rows.Next() {
		var uid, id, kind string
		var idx, pid int
		var completed bool
		var at time.Time
		if err := rows.Scan(&uid, &idx, &id, &pid, &kind, &completed, &at); err != nil {
			return nil, fmt.Errorf("read the items witness: %w", err)
		}
		k := key{uid, id}
		e := execs[k]
		if e == nil {
			e = &ItemExecution{ID: id, PID: pid}
			execs[k] = e
			where[k] = [2]any{uid, idx}
		}
		switch kind {
		case KindStart:
			e.Start = at
		case KindEnd:
			e.Ended, e.End, e.Completed = true, at, completed
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the items witness: %w", err)
	}
	out := map[string]map[int][]ItemExecution{}
	for k, e := range execs {
		w := where[k]
		uid, idx := w[0].(string), w[1].(int)
		if out[uid] == nil {
			out[uid] = map[int][]ItemExecution{}
		}
		out[uid][idx] = append(out[uid][idx], *e)
	}
	for _, items := range out {
		for _, es := range items {
			slices.SortFunc(es, func(a, b ItemExecution) int { return a.Start.Compare(b.Start) })
		}
	}
	return out, nil
}
