package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Purged counts what PurgeHistory deleted.
type Purged struct {
	Tasks, Transitions int64
}

// PurgeHistory deletes up to limit soft-deleted tasks whose deletion is older than before,
// rows and history together, in one transaction, and adds them to background_task_purges
// (one row per day). It is the one deletion the history's append-only trigger allows. Rows
// another purger holds are skipped, so replicas can purge at the same time.
func (r *Repository) PurgeHistory(ctx context.Context, before time.Time, limit int) (Purged, error) {
	var p Purged
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SET LOCAL taskpilot.allow_history_purge = 'on'`).Error; err != nil {
			return err
		}
		var uids []string
		if err := tx.Raw(`SELECT uid FROM background_tasks WHERE deleted_at < ? ORDER BY deleted_at LIMIT ? FOR UPDATE SKIP LOCKED`,
			before, limit).Scan(&uids).Error; err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		res := tx.Exec(`DELETE FROM background_task_transitions WHERE task_uid IN ?`, uids)
		if res.Error != nil {
			return res.Error
		}
		p.Transitions = res.RowsAffected
		if res = tx.Exec(`DELETE FROM background_tasks WHERE uid IN ?`, uids); res.Error != nil {
			return res.Error
		}
		p.Tasks = res.RowsAffected
		return tx.Exec(`INSERT INTO background_task_purges (day, tasks, transitions) VALUES (current_date, ?, ?)
			ON CONFLICT (day) DO UPDATE SET tasks = background_task_purges.tasks + EXCLUDED.tasks,
			transitions = background_task_purges.transitions + EXCLUDED.transitions`, p.Tasks, p.Transitions).Error
	})
	if err != nil {
		return Purged{}, fmt.Errorf("purge history deleted before %s: %w", before.Format(time.RFC3339), err)
	}
	return p, nil
}
