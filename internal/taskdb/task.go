package taskdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Task is one row of background_tasks as column name → value (JSON types: strings, numbers,
// nested objects; timestamps as RFC 3339 strings). Reading the row whole with to_jsonb means
// columns a newer operator adds appear without a change here. The checkpoint column is left
// out: it is the task's private resume data and can be 64 KiB.
type Task map[string]any

// taskSelect reads rows of background_tasks (alias t) as JSON objects.
const taskSelect = `SELECT to_jsonb(t) - 'checkpoint' FROM background_tasks t `

// TaskByUID returns the row of the BackgroundTask with this metadata.uid, deleted or not.
func (d *DB) TaskByUID(ctx context.Context, uid string) (Task, error) {
	return d.oneTask(ctx, taskSelect+`WHERE t.uid = $1`, uid)
}

// LatestTaskByName returns the newest row for namespace/name, for a task whose Kubernetes
// object is gone (its row is soft-deleted but kept with its history).
func (d *DB) LatestTaskByName(ctx context.Context, namespace, name string) (Task, error) {
	return d.oneTask(ctx, taskSelect+`WHERE t.namespace = $1 AND t.name = $2 ORDER BY t.created_at DESC, t.id DESC LIMIT 1`, namespace, name)
}

func (d *DB) oneTask(ctx context.Context, sql string, args ...any) (Task, error) {
	var t Task
	err := d.pool.QueryRow(ctx, sql, args...).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read background_tasks: %w", err)
	}
	return t, nil
}

// Text renders column col for a table: "" when missing or NULL, timestamps as given, numbers
// without exponent.
func (t Task) Text(col string) string {
	switch v := t[col].(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	default:
		return fmt.Sprint(v)
	}
}

// Time parses a timestamp column; ok is false when it is missing or NULL.
func (t Task) Time(col string) (time.Time, bool) {
	s, isString := t[col].(string)
	if !isString {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	return at, err == nil
}
