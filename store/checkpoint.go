package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

const saveCheckpointSQL = `
UPDATE background_tasks
SET checkpoint = CAST(@data AS jsonb), checkpoint_attempt = CAST(@attempt AS integer), updated_at = now()
WHERE uid = @uid AND attempt = @attempt AND deleted_at IS NULL`

// SaveCheckpoint implements Repository. The attempt guard stops a zombie run
// of an earlier attempt from overwriting the checkpoint of the current one.
func (r *GormRepository) SaveCheckpoint(ctx context.Context, uid string, attempt int, data json.RawMessage) error {
	if len(data) > MaxCheckpointSize {
		return fmt.Errorf("save checkpoint %s: %d bytes, max %d: %w", uid, len(data), MaxCheckpointSize, ErrCheckpointTooLarge)
	}
	if len(data) == 0 || !json.Valid(data) {
		return fmt.Errorf("save checkpoint %s: not valid JSON: %w", uid, ErrInvalidArgument)
	}
	res := r.db.WithContext(ctx).Exec(saveCheckpointSQL, map[string]any{
		"uid": uid, "attempt": attempt, "data": string(data),
	})
	if res.Error != nil {
		// The DB measures the normalised jsonb text, which can exceed the raw size.
		var pgErr *pgconn.PgError
		if errors.As(res.Error, &pgErr) && pgErr.ConstraintName == "background_tasks_checkpoint_size" {
			return fmt.Errorf("save checkpoint %s: %w: %w", uid, ErrCheckpointTooLarge, res.Error)
		}
		return fmt.Errorf("save checkpoint %s: %w", uid, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var current struct{ Attempt int }
	q := r.db.WithContext(ctx).Raw(`SELECT attempt FROM background_tasks WHERE uid = ? AND deleted_at IS NULL`, uid).Scan(&current)
	switch {
	case q.Error != nil:
		return fmt.Errorf("save checkpoint %s: check attempt: %w", uid, q.Error)
	case q.RowsAffected == 0:
		return fmt.Errorf("save checkpoint %s: %w", uid, ErrNotFound)
	default:
		return fmt.Errorf("save checkpoint %s: attempt %d, row is at attempt %d: %w", uid, attempt, current.Attempt, ErrStaleTransition)
	}
}

// LoadCheckpoint implements Repository.
func (r *GormRepository) LoadCheckpoint(ctx context.Context, uid string) (json.RawMessage, int, error) {
	var row struct {
		Checkpoint        []byte
		CheckpointAttempt *int
	}
	q := r.db.WithContext(ctx).Raw(
		`SELECT checkpoint, checkpoint_attempt FROM background_tasks WHERE uid = ? AND deleted_at IS NULL`, uid).Scan(&row)
	if q.Error != nil {
		return nil, 0, fmt.Errorf("load checkpoint %s: %w", uid, q.Error)
	}
	if q.RowsAffected == 0 {
		return nil, 0, fmt.Errorf("load checkpoint %s: %w", uid, ErrNotFound)
	}
	if row.Checkpoint == nil {
		return nil, 0, nil
	}
	return json.RawMessage(row.Checkpoint), deref(row.CheckpointAttempt), nil
}
