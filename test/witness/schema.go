package witness

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// URLEnv names the environment variable holding the witness database's URL; the chaos
// operator opens its own pool from it.
const URLEnv = "CHAOS_WITNESS_URL"

// TaskType is the name the witness task type is registered under.
const TaskType = "witness"

// Row kinds.
const (
	KindStart = "start"
	KindMark  = "mark"
	KindEnd   = "end"
)

// schemaSQL creates the witness table. step is the step resumed from (start) or about to be
// done (mark); completed is set on end rows only; detail is the error that ended a run.
const schemaSQL = `
CREATE TABLE IF NOT EXISTS chaos_witness (
    id        bigserial   PRIMARY KEY,
    task_uid  text        NOT NULL,
    attempt   integer     NOT NULL,
    exec_id   text        NOT NULL,
    pid       integer     NOT NULL,
    kind      text        NOT NULL CHECK (kind IN ('start', 'mark', 'end')),
    step      integer     NOT NULL DEFAULT 0,
    completed boolean,
    detail    text        NOT NULL DEFAULT '',
    at        timestamptz NOT NULL,
    -- One row per execution, kind and step: an insert retried after its commit (the client saw
    -- an error, a PostgreSQL outage) updates the row instead of adding one, which the checks
    -- would count as the step done twice.
    UNIQUE (exec_id, kind, step)
);
CREATE INDEX IF NOT EXISTS chaos_witness_task_idx ON chaos_witness (task_uid, exec_id)`

// CreateTable creates the witness tables (the harness does, before any operator starts).
func CreateTable(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("create witness table: %w", err)
	}
	if _, err := pool.Exec(ctx, itemsSchemaSQL); err != nil {
		return fmt.Errorf("create items witness table: %w", err)
	}
	return nil
}
