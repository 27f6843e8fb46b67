package taskdb

import (
	"context"
	"fmt"
	"time"
)

// Firing is one row of background_task_firings: what became of one slot of a TaskSchedule.
type Firing struct {
	Slot       time.Time `json:"slot"`
	Manual     bool      `json:"manual,omitempty"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	TaskName   string    `json:"taskName,omitempty"`
	RecordedAt time.Time `json:"recordedAt"`
	RecordedBy string    `json:"recordedBy,omitempty"`
}

// Firings returns the newest firings of the TaskSchedule namespace/name (every schedule of that
// name, deleted ones too), newest first, at most limit.
func (d *DB) Firings(ctx context.Context, namespace, schedule string, limit int) ([]Firing, error) {
	rows, err := d.pool.Query(ctx, `SELECT slot, manual, outcome, reason, task_name, recorded_at, recorded_by
FROM background_task_firings WHERE namespace = $1 AND schedule = $2 ORDER BY slot DESC, id DESC LIMIT $3`, namespace, schedule, limit)
	if err != nil {
		return nil, fmt.Errorf("read background_task_firings: %w", err)
	}
	defer rows.Close()
	var out []Firing
	for rows.Next() {
		var f Firing
		if err := rows.Scan(&f.Slot, &f.Manual, &f.Outcome, &f.Reason, &f.TaskName, &f.RecordedAt, &f.RecordedBy); err != nil {
			return nil, fmt.Errorf("read background_task_firings: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read background_task_firings: %w", err)
	}
	return out, nil
}
