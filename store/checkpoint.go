package store

import (
	"context"
	"encoding/json"
	"fmt"
)

const saveCheckpointSQL = `
UPDATE background_tasks
SET checkpoint = CAST(@data AS jsonb), checkpoint_attempt = CAST(@attempt AS integer), updated_at = now()
WHERE uid = CAST(@uid AS text) AND attempt = CAST(@attempt AS integer) AND owner_epoch = CAST(@epoch AS bigint)
  AND deleted_at IS NULL`

// SaveCheckpoint stores data as the checkpoint of the given attempt. data must have been
// prepared with pgtext.JSON and fit lifecycle.MaxPayloadBytes. The guard on attempt and owner keeps a
// late save of an older attempt, or of a fenced owner, from overwriting the current one:
// ErrConflict when the row moved on to another attempt (the checkpoint is obsolete), ErrFenced,
// ErrDeleted or ErrNotFound otherwise.
func (r *Repository) SaveCheckpoint(ctx context.Context, uid string, owner Owner, attempt int, data json.RawMessage) error {
	if len(data) == 0 {
		return fmt.Errorf("save checkpoint %s: empty: %w", uid, ErrInvalidArgument)
	}
	res := r.db.WithContext(ctx).Exec(saveCheckpointSQL, map[string]any{
		"uid": uid, "epoch": owner.Epoch, "attempt": attempt, "data": string(data),
	})
	if res.Error != nil {
		return fmt.Errorf("save checkpoint of %s attempt %d: %w", uid, attempt, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	return r.diagnose(ctx, uid, owner, fmt.Sprintf("save checkpoint of attempt %d", attempt), nil, 0)
}
