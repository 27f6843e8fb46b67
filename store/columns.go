package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/pgtext"
)

// ColumnUpdate lists the informational columns an owner refreshes between transitions; nil
// fields are left alone.
type ColumnUpdate struct {
	// Progress is the task's latest progress text (truncated to lifecycle.MaxProgressChars characters).
	Progress *string
	// Desired mirrors spec.state for SQL users.
	Desired *lifecycle.Desired
}

// UpdateColumns writes u, guarded by ownership: ErrFenced, ErrDeleted or ErrNotFound when the
// row is not the owner's to write.
func (r *Repository) UpdateColumns(ctx context.Context, uid string, owner Owner, u ColumnUpdate) error {
	cols := map[string]any{"updated_at": gorm.Expr("now()")}
	if u.Progress != nil {
		cols["progress"] = pgtext.Text(*u.Progress, lifecycle.MaxProgressChars)
	}
	if u.Desired != nil {
		cols["desired_state"] = string(*u.Desired)
	}
	res := r.db.WithContext(ctx).Model(&Task{}).Where("uid = ? AND owner_epoch = ?", uid, owner.Epoch).Updates(cols)
	if res.Error != nil {
		return fmt.Errorf("update task %s: %w", uid, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	return r.diagnose(ctx, uid, owner, "update columns", nil, 0)
}
