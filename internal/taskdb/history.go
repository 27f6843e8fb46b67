package taskdb

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Transition is one row of background_task_transitions.
type Transition struct {
	Seq     int64     `json:"seq"`
	From    string    `json:"fromStatus,omitempty"` // empty for seq 1 (creation)
	To      string    `json:"toStatus"`
	Attempt int       `json:"attempt"`
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

const transitionColumns = `h.seq, coalesce(h.from_status, ''), h.to_status, h.attempt, h.reason, h.message, h.at`

func scanTransition(row pgx.Row, extra ...any) (Transition, error) {
	var tr Transition
	dest := append([]any{&tr.Seq, &tr.From, &tr.To, &tr.Attempt, &tr.Reason, &tr.Message, &tr.At}, extra...)
	err := row.Scan(dest...)
	return tr, err
}

// History returns every transition of the task with this uid, in order.
func (d *DB) History(ctx context.Context, uid string) ([]Transition, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+transitionColumns+`
FROM background_task_transitions h WHERE h.task_uid = $1 ORDER BY h.seq`, uid)
	if err != nil {
		return nil, fmt.Errorf("read background_task_transitions: %w", err)
	}
	defer rows.Close()
	var out []Transition
	for rows.Next() {
		tr, err := scanTransition(rows)
		if err != nil {
			return nil, fmt.Errorf("read background_task_transitions: %w", err)
		}
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read background_task_transitions: %w", err)
	}
	return out, nil
}

// LastTransitions returns the latest transition of each of the tasks with these uids
// (background_tasks.last_seq points at it); tasks without a row are missing from the map.
func (d *DB) LastTransitions(ctx context.Context, uids []string) (map[string]Transition, error) {
	out := make(map[string]Transition, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := d.pool.Query(ctx, `SELECT `+transitionColumns+`, t.uid
FROM background_tasks t
JOIN background_task_transitions h ON h.task_uid = t.uid AND h.seq = t.last_seq
WHERE t.uid = ANY($1)`, uids)
	if err != nil {
		return nil, fmt.Errorf("read last transitions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid string
		tr, err := scanTransition(rows, &uid)
		if err != nil {
			return nil, fmt.Errorf("read last transitions: %w", err)
		}
		out[uid] = tr
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read last transitions: %w", err)
	}
	return out, nil
}
