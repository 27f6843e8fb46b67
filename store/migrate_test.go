package store

import (
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
)

func TestMigrateFromEmptyAndIdempotent(t *testing.T) {
	repo := newRepo(t) // Open migrates an empty database
	ctx := testCtx(t)

	var tables []string
	require.NoError(t, repo.db.WithContext(ctx).Raw(`
		SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' ORDER BY table_name`).Scan(&tables).Error)
	require.Equal(t, []string{"background_task_transitions", "background_tasks", SchemaVersionTable}, tables)

	versions := func() []int64 {
		var v []int64
		require.NoError(t, repo.db.WithContext(ctx).Raw(
			`SELECT version_id FROM `+SchemaVersionTable+` WHERE is_applied ORDER BY id`).Scan(&v).Error)
		return v
	}
	require.Equal(t, []int64{0, 1}, versions())

	require.NoError(t, Migrate(ctx, repo.sqlDB))
	require.NoError(t, Migrate(ctx, repo.sqlDB))
	require.Equal(t, []int64{0, 1}, versions(), "re-running applies nothing")
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
