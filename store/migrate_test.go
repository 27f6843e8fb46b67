package store

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

func TestMigrateFromEmptyAndIdempotent(t *testing.T) {
	repo := newRepo(t) // Open migrates an empty database
	ctx := testCtx(t)

	var tables []string
	require.NoError(t, repo.db.WithContext(ctx).Raw(`
		SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' ORDER BY table_name`).Scan(&tables).Error)
	require.Equal(t, []string{"background_task_firings", "background_task_item_transitions", "background_task_items", "background_task_purges", "background_task_queues", "background_task_schedule_revisions", "background_task_transitions",
		"background_tasks", "taskpilot_members", SchemaVersionTable}, tables)

	versions := func() []int64 {
		var v []int64
		require.NoError(t, repo.db.WithContext(ctx).Raw(
			`SELECT version_id FROM `+SchemaVersionTable+` WHERE is_applied ORDER BY id`).Scan(&v).Error)
		return v
	}
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, versions())

	require.NoError(t, Migrate(ctx, repo.sqlDB))
	require.NoError(t, Migrate(ctx, repo.sqlDB))
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, versions(), "re-running applies nothing")
}

func TestMigrateConcurrent(t *testing.T) {
	url := srv.NewDatabase(t)
	ctx := testCtx(t)
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)

	const replicas = 2
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		db := stdlib.OpenDB(*cfg)
		t.Cleanup(func() { _ = db.Close() })
		wg.Go(func() { errs[i] = Migrate(ctx, db) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	repo := openRepo(t, url, Config{})
	var applied int
	require.NoError(t, repo.db.WithContext(ctx).Raw(
		`SELECT count(*) FROM `+SchemaVersionTable+` WHERE version_id = 1`).Scan(&applied).Error)
	require.Equal(t, 1, applied, "the advisory lock lets exactly one replica apply version 1")
}

// TestMigrationKeepsRowsOfThePreviousVersion builds the database as version 1 of the schema
// left it, then migrates: the new decision columns are filled from the history, and rows that
// had no restart generation honour 0, as a new task does.
func TestMigrationKeepsRowsOfThePreviousVersion(t *testing.T) {
	url := srv.NewDatabase(t)
	ctx := testCtx(t)
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, migrateTo(ctx, db, logr.Discard(), 1))
	for _, stmt := range []string{
		`INSERT INTO background_tasks (uid, task_name, status, attempt, last_seq, end_time) VALUES
			('failed', 'x', 'FAILED', 1, 3, now()), ('retrying', 'x', 'PENDING', 3, 6, NULL)`,
		`INSERT INTO background_task_transitions (task_uid, seq, from_status, to_status, attempt, reason, at) VALUES
			('failed', 1, NULL, 'PENDING', 0, 'Created', now()), ('failed', 2, 'PENDING', 'RUNNING', 1, 'Started', now()),
			('failed', 3, 'RUNNING', 'FAILED', 1, 'UnknownTaskType', now()),
			('retrying', 6, 'FAILED', 'PENDING', 3, 'RetryScheduled', '2030-01-01T00:00:00Z')`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err)
	}
	repo := openRepo(t, url, Config{}) // migrates to the latest version

	failed, err := repo.GetTask(ctx, "failed")
	require.NoError(t, err)
	require.Equal(t, lifecycle.ReasonUnknownTaskType, failed.Reason, "the reason a decision needs is in the row")
	require.Zero(t, failed.ObservedRestartGeneration)
	_, owned := failed.Owned()
	require.False(t, owned)
	retrying, err := repo.GetTask(ctx, "retrying")
	require.NoError(t, err)
	require.Equal(t, 2, retrying.Retries, "the previous version counted every attempt after the first")
	require.True(t, retrying.RetryAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
}

// TestDatabasesOfOneServerMigrateAtOnce: roles belong to the server, not to a database, so
// operators whose databases share a server (several deployments, parallel tests) create them
// at the same time; the loser of that race must take the winner's role, whichever error
// PostgreSQL reports for it. A server of the test's own, so the roles do not exist yet.
func TestDatabasesOfOneServerMigrateAtOnce(t *testing.T) {
	ctx := testCtx(t)
	own, err := pgtest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = own.Close() })
	const databases = 6
	dbs := make([]*sql.DB, databases)
	for i := range dbs {
		url, err := own.CreateDatabase(ctx, fmt.Sprintf("concurrent_%d", i))
		require.NoError(t, err)
		cfg, err := pgx.ParseConfig(url)
		require.NoError(t, err)
		dbs[i] = stdlib.OpenDB(*cfg)
		t.Cleanup(func() { _ = dbs[i].Close() })
		require.NoError(t, dbs[i].PingContext(ctx))
	}
	errs := make([]error, databases)
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() { errs[i] = Migrate(ctx, db) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "database %d", i)
	}
}
