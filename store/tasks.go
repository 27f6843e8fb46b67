package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// CreateTaskSQL inserts the row and its seq-1 history record in one statement
// (one implicit transaction, one round trip). ON CONFLICT makes it idempotent:
// when the uid exists, nothing is written and no row is returned. Named
// parameters: @uid, @namespace, @name, @task_name, @desired_state. Exported so
// the benchmark's PostgreSQL ceiling runs exactly this statement.
const CreateTaskSQL = `
WITH ins AS (
    INSERT INTO background_tasks
        (uid, namespace, name, task_name, status, desired_state, attempt, last_seq, created_at, updated_at)
    VALUES
        (CAST(@uid AS text), CAST(@namespace AS text), CAST(@name AS text), CAST(@task_name AS text), 'PENDING', CAST(@desired_state AS text), 0, 1, now(), now())
    ON CONFLICT (uid) DO NOTHING
    RETURNING *
), hist AS (
    INSERT INTO background_task_transitions (task_uid, seq, from_status, to_status, attempt, reason, message, at)
    SELECT uid, 1, NULL, 'PENDING', 0, 'Created', '', created_at FROM ins
)
SELECT * FROM ins`

// CreateTask implements Repository.
func (r *GormRepository) CreateTask(ctx context.Context, t *Task) (bool, error) {
	if t == nil || t.UID == "" || t.TaskName == "" {
		return false, fmt.Errorf("create task: uid and task name are required: %w", ErrInvalidArgument)
	}
	desired := t.DesiredState
	if desired == "" {
		desired = DesiredRunning
	}
	if !desired.Valid() {
		return false, fmt.Errorf("create task %s: desired state %q: %w", t.UID, desired, ErrInvalidArgument)
	}
	var inserted Task
	res := r.db.WithContext(ctx).Raw(CreateTaskSQL, map[string]any{
		"uid":           t.UID,
		"namespace":     t.Namespace,
		"name":          t.Name,
		"task_name":     t.TaskName,
		"desired_state": string(desired),
	}).Scan(&inserted)
	if res.Error != nil {
		return false, fmt.Errorf("create task %s: %w", t.UID, res.Error)
	}
	if res.RowsAffected == 1 {
		*t = inserted
		return true, nil
	}

	// The uid exists: return what is stored.
	var existing Task
	err := r.db.WithContext(ctx).Unscoped().Where("uid = ?", t.UID).Take(&existing).Error
	if err != nil {
		return false, fmt.Errorf("create task %s: read existing row: %w", t.UID, notFound(err))
	}
	if existing.DeletedAt.Valid {
		return false, fmt.Errorf("create task %s: uid belongs to a deleted task: %w", t.UID, ErrAlreadyExists)
	}
	*t = existing
	return false, nil
}

// GetTask implements Repository.
func (r *GormRepository) GetTask(ctx context.Context, uid string) (*Task, error) {
	var t Task
	if err := r.db.WithContext(ctx).Where("uid = ?", uid).Take(&t).Error; err != nil {
		return nil, fmt.Errorf("get task %s: %w", uid, notFound(err))
	}
	return &t, nil
}

// ListTasks implements Repository with keyset pagination on id, so pages
// stay stable and cheap however deep the caller goes.
func (r *GormRepository) ListTasks(ctx context.Context, opts ListOptions) ([]Task, string, error) {
	after, err := decodeContinue(opts.Continue)
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)

	q := r.db.WithContext(ctx).Model(&Task{}).Where("id > ?", after)
	if opts.Namespace != "" {
		q = q.Where("namespace = ?", opts.Namespace)
	}
	if opts.TaskName != "" {
		q = q.Where("task_name = ?", opts.TaskName)
	}
	if len(opts.Statuses) > 0 {
		q = q.Where("status IN ?", statusStrings(opts.Statuses))
	}
	var tasks []Task
	// One extra row tells whether another page exists.
	if err := q.Order("id").Limit(limit + 1).Find(&tasks).Error; err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	next := ""
	if len(tasks) > limit {
		tasks = tasks[:limit]
		next = encodeContinue(tasks[limit-1].ID)
	}
	return tasks, next, nil
}

// ListActive implements Repository.
func (r *GormRepository) ListActive(ctx context.Context) ([]Task, error) {
	var tasks []Task
	err := r.db.WithContext(ctx).
		Where("status IN ?", statusStrings([]Status{StatusPending, StatusRunning, StatusPaused})).
		Order("id").Find(&tasks).Error
	if err != nil {
		return nil, fmt.Errorf("list active tasks: %w", err)
	}
	return tasks, nil
}

// UpdateTask implements Repository.
func (r *GormRepository) UpdateTask(ctx context.Context, uid string, u TaskUpdate) error {
	cols := map[string]any{"updated_at": gorm.Expr("now()")}
	if u.DesiredState != nil {
		if !u.DesiredState.Valid() {
			return fmt.Errorf("update task %s: desired state %q: %w", uid, *u.DesiredState, ErrInvalidArgument)
		}
		cols["desired_state"] = string(*u.DesiredState)
	}
	if u.Namespace != nil {
		cols["namespace"] = *u.Namespace
	}
	if u.Name != nil {
		cols["name"] = *u.Name
	}
	if u.Progress != nil {
		cols["progress"] = truncate(*u.Progress, MaxProgressLen)
	}
	res := r.db.WithContext(ctx).Model(&Task{}).Where("uid = ?", uid).Updates(cols)
	if res.Error != nil {
		return fmt.Errorf("update task %s: %w", uid, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("update task %s: %w", uid, ErrNotFound)
	}
	return nil
}

// MarkDeleted implements Repository.
func (r *GormRepository) MarkDeleted(ctx context.Context, uid string) error {
	err := r.db.WithContext(ctx).Exec(
		`UPDATE background_tasks SET deleted_at = now(), updated_at = now() WHERE uid = ? AND deleted_at IS NULL`,
		uid).Error
	if err != nil {
		return fmt.Errorf("mark task %s deleted: %w", uid, err)
	}
	return nil
}

// History implements Repository.
func (r *GormRepository) History(ctx context.Context, uid string) ([]TransitionRecord, error) {
	var recs []TransitionRecord
	if err := r.db.WithContext(ctx).Where("task_uid = ?", uid).Order("seq").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("history of task %s: %w", uid, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("history of task %s: %w", uid, ErrNotFound)
	}
	return recs, nil
}

// notFound maps GORM's not-found error to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

func statusStrings(ss []Status) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
