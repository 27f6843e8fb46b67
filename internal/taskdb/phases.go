package taskdb

import (
	"context"
	"fmt"
	"time"
)

// PhaseCount is how many tasks were in one status at one instant.
type PhaseCount struct {
	At     time.Time
	Status string
	Tasks  int
}

// PhaseCounts samples, at every step from from to to, how many tasks were in each status,
// from the transition history: a task is in the status of its latest transition at or before
// the instant, until its row was soft-deleted. Statuses with no task at an instant are
// omitted. namespace limits the count to one namespace ("" for all). It reads the history of
// the tasks alive during the window once (one statement).
func (d *DB) PhaseCounts(ctx context.Context, namespace string, from, to time.Time, step time.Duration) ([]PhaseCount, error) {
	if step <= 0 || to.Before(from) {
		return nil, fmt.Errorf("phase counts: bad window %s..%s step %s", from, to, step)
	}
	rows, err := d.pool.Query(ctx, `
WITH spans AS (
  SELECT h.to_status AS status, h.at AS since,
         coalesce(lead(h.at) OVER (PARTITION BY h.task_uid ORDER BY h.seq), t.deleted_at, 'infinity') AS until
  FROM background_task_transitions h
  JOIN background_tasks t ON t.uid = h.task_uid
  WHERE (t.deleted_at IS NULL OR t.deleted_at >= $1) AND ($4 = '' OR t.namespace = $4)
), instants AS (
  SELECT generate_series($1::timestamptz, $2::timestamptz, $3::interval) AS at
)
SELECT i.at, s.status, count(*)
FROM instants i JOIN spans s ON s.since <= i.at AND i.at < s.until
GROUP BY i.at, s.status
ORDER BY i.at, s.status`, from, to, fmt.Sprintf("%d microseconds", step.Microseconds()), namespace)
	if err != nil {
		return nil, fmt.Errorf("count tasks by status: %w", err)
	}
	defer rows.Close()
	var out []PhaseCount
	for rows.Next() {
		var c PhaseCount
		if err := rows.Scan(&c.At, &c.Status, &c.Tasks); err != nil {
			return nil, fmt.Errorf("count tasks by status: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count tasks by status: %w", err)
	}
	return out, nil
}
