package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskpilot/taskpilot/test/witness"
)

// itemRowObs is one row of background_task_items.
type itemRowObs struct {
	state      string
	seq        int
	executions int
}

// itemTransObs is one row of background_task_item_transitions.
type itemTransObs struct {
	seq      int
	from, to string
}

// itemsObs is what invariant 10 reads of the task with items: its rows and item histories in
// PostgreSQL, what the witness saw of every item execution, and the task's row status.
type itemsObs struct {
	uid, name, status string
	count             int
	rows              map[int]itemRowObs
	hist              map[int][]itemTransObs
	execs             map[int][]witness.ItemExecution
	// paused are the task's PAUSED spans, from its history: [recorded, left] (left zero: it
	// never left).
	paused [][2]time.Time
}

// pausedSpans are the spans the history shows the task PAUSED.
func pausedSpans(trs []transition) [][2]time.Time {
	var out [][2]time.Time
	for i, t := range trs {
		if t.to != "PAUSED" {
			continue
		}
		span := [2]time.Time{t.at}
		if i+1 < len(trs) {
			span[1] = trs[i+1].at
		}
		out = append(out, span)
	}
	return out
}

// observeItems reads the task with items of uid.
func observeItems(ctx context.Context, db, wdb *pgxpool.Pool, uid string) (itemsObs, error) {
	o := itemsObs{uid: uid, rows: map[int]itemRowObs{}, hist: map[int][]itemTransObs{}}
	rows, err := db.Query(ctx, `SELECT idx, state, seq, executions FROM background_task_items WHERE task_uid = $1`, uid)
	if err != nil {
		return o, fmt.Errorf("read the items: %w", err)
	}
	for rows.Next() {
		var idx int
		var r itemRowObs
		if err := rows.Scan(&idx, &r.state, &r.seq, &r.executions); err != nil {
			rows.Close()
			return o, fmt.Errorf("read the items: %w", err)
		}
		o.rows[idx] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("read the items: %w", err)
	}
	trs, err := db.Query(ctx, `SELECT idx, seq, from_state, to_state FROM background_task_item_transitions
WHERE task_uid = $1 ORDER BY idx, seq`, uid)
	if err != nil {
		return o, fmt.Errorf("read the item histories: %w", err)
	}
	for trs.Next() {
		var idx int
		var t itemTransObs
		if err := trs.Scan(&idx, &t.seq, &t.from, &t.to); err != nil {
			trs.Close()
			return o, fmt.Errorf("read the item histories: %w", err)
		}
		o.hist[idx] = append(o.hist[idx], t)
	}
	trs.Close()
	if err := trs.Err(); err != nil {
		return o, fmt.Errorf("read the item histories: %w", err)
	}
	all, err := witness.LoadItems(ctx, wdb)
	if err != nil {
		return o, err
	}
	o.execs = all[uid]
	return o, nil
}

// checkItems is invariant 10, per item of the task with items:
//   - no item executes twice at once: no execution completes after another execution of the
//     same item started, unless its process was frozen in between (a process woken after its
//     lease lapsed finishes the work it had in hand: at-least-once, as for a run's step);
//   - each item's history is contiguous (seq 1..n, each transition starting where the previous
//     ended, the first from pending) and ends in the item's state;
//   - when the task finished, every item succeeded exactly once (one transition to succeeded)
//     and the witness saw it complete;
//   - no item executes while the task is Paused: none starts in a PAUSED span of its history,
//     and none that started before the pause was recorded ends after it (a pause lets the items
//     in flight end, and records them, before the task parks).
//
// frozen reports whether process pid was frozen at some time in [from, to].
func checkItems(o itemsObs, frozen func(pid int, from, to time.Time) bool) result {
	r := result{id: "10", title: "items: no item runs twice at once, histories contiguous, every item ends once"}
	if o.uid == "" {
		r.skipped = "the task with items was not created"
		return r
	}
	label := taskLabel(o.name, o.uid)
	executions, tolerated := 0, 0
	for idx := range o.count {
		es := o.execs[idx]
		executions += len(es)
		for i := range es {
			for j := i + 1; j < len(es); j++ {
				a, b := es[i], es[j] // a started first
				if !a.Ended || !a.Completed || !a.End.After(b.Start) {
					continue
				}
				if frozen(a.PID, a.Start, b.Start) {
					tolerated++
					continue
				}
				r.add("two executions at once", example{task: label, what: fmt.Sprintf(
					"item %d: pid %d's execution (started %s) completed at %s, after pid %d's started at %s",
					idx, a.PID, clock(a.Start), clock(a.End), b.PID, clock(b.Start))})
			}
			if why := whilePaused(es[i], o.paused); why != "" {
				r.add("while paused", example{task: label, what: fmt.Sprintf("item %d: pid %d's execution %s", idx, es[i].PID, why)})
			}
		}
		row, ok := o.rows[idx]
		if !ok {
			r.add("missing", example{task: label, what: fmt.Sprintf("item %d has no row", idx)})
			continue
		}
		if why := itemHistoryBroken(row, o.hist[idx]); why != "" {
			r.add("history", example{task: label, what: fmt.Sprintf("item %d: %s", idx, why)})
		}
		if o.status != "FINISHED" {
			continue
		}
		succeeded, completed := 0, 0
		for _, t := range o.hist[idx] {
			if t.to == "succeeded" {
				succeeded++
			}
		}
		for _, e := range es {
			if e.Ended && e.Completed {
				completed++
			}
		}
		switch {
		case row.state != "succeeded" || succeeded != 1:
			r.add("did not end once", example{task: label, what: fmt.Sprintf("item %d of a FINISHED task is %s, recorded succeeded %d times", idx, row.state, succeeded)})
		case completed == 0:
			r.add("did not end once", example{task: label, what: fmt.Sprintf("item %d is succeeded, but the witness never saw it complete", idx)})
		}
	}
	if o.status != "FINISHED" {
		r.add("not finished", example{task: label, what: fmt.Sprintf("the task is %s after the settle", orNone(o.status))})
	}
	r.checked = fmt.Sprintf("%d items, %d executions, %d item transitions; the task %s", o.count, executions, countTrans(o.hist), orNone(o.status))
	if tolerated > 0 {
		r.checked += fmt.Sprintf("; %d completions by a process frozen meanwhile (at-least-once)", tolerated)
	}
	return r
}

// whilePaused says how e executed while the task was paused ("" : it did not).
func whilePaused(e witness.ItemExecution, paused [][2]time.Time) string {
	for _, p := range paused {
		left := p[1]
		if e.Start.After(p[0]) && (left.IsZero() || e.Start.Before(left)) {
			return fmt.Sprintf("started at %s, while the task was PAUSED (from %s)", clock(e.Start), clock(p[0]))
		}
		if e.Start.Before(p[0]) && e.Ended && e.End.After(p[0]) {
			return fmt.Sprintf("started at %s and ended at %s, after the pause was recorded at %s", clock(e.Start), clock(e.End), clock(p[0]))
		}
	}
	return ""
}

// itemHistoryBroken says how an item's history breaks the rules ("" : it does not).
func itemHistoryBroken(row itemRowObs, hist []itemTransObs) string {
	prev := "pending"
	for i, t := range hist {
		if t.seq != i+1 {
			return fmt.Sprintf("transition %d has seq %d", i+1, t.seq)
		}
		if t.from != prev {
			return fmt.Sprintf("seq %d starts from %s, the previous ended in %s", t.seq, t.from, prev)
		}
		prev = t.to
	}
	if row.seq != len(hist) {
		return fmt.Sprintf("the row's seq is %d, its history has %d transitions", row.seq, len(hist))
	}
	if prev != row.state {
		return fmt.Sprintf("the row is %s, its history ends in %s", row.state, prev)
	}
	return ""
}

func countTrans(h map[int][]itemTransObs) int {
	n := 0
	for _, ts := range h {
		n += len(ts)
	}
	return n
}
