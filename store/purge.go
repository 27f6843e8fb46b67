package store

import (
	"context"
	"fmt"
	"time"
)

// Purged counts what PurgeHistory deleted.
type Purged struct {
	Tasks, Transitions int64
}

// PurgeHistory deletes up to limit soft-deleted tasks whose deletion is older than before (at
// least an hour ago), rows and history together, in one transaction, and adds them to
// background_task_purges (one row per day). It is the one deletion the history's append-only
// trigger allows, done by the schema's function taskpilot_purge_history with the owner's
// rights: the operator's role has no DELETE on any table. Rows another purger holds are
// skipped, so replicas can purge at the same time.
func (r *Repository) PurgeHistory(ctx context.Context, before time.Time, limit int) (Purged, error) {
	var p Purged
	row := r.sqlDB.QueryRowContext(ctx, `SELECT tasks, transitions FROM taskpilot_purge_history($1, $2)`, before, limit)
	if err := row.Scan(&p.Tasks, &p.Transitions); err != nil {
		return Purged{}, fmt.Errorf("purge history deleted before %s: %w", before.Format(time.RFC3339), err)
	}
	return p, nil
}
