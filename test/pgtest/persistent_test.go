package pgtest_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/taskpilot/taskpilot/test/freeport"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/test/pgtest"
)

// searchableTempDir is a temp dir the postgres user can enter when the tests
// run as root (t.TempDir is private to its owner).
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgtest-persistent-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestPersistentDataSurvivesClose(t *testing.T) {
	if os.Getenv("DATABASE_URL") != "" {
		t.Skip("external server: options are ignored")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(searchableTempDir(t), "nested", "pgdata")

	s, err := pgtest.Start(ctx, pgtest.WithDataDir(dir), pgtest.WithProcessGroup())
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, s.URL())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)`)
	require.NoError(t, err)
	var fsync string
	require.NoError(t, conn.QueryRow(ctx, `SHOW fsync`).Scan(&fsync))
	require.Equal(t, "on", fsync, "a persistent server is durable")
	require.NoError(t, conn.Close(ctx))
	require.NoError(t, s.Close())
	_, err = os.Stat(filepath.Join(dir, "PG_VERSION"))
	require.NoError(t, err, "Close keeps the data dir")
	_, err = os.Stat(filepath.Join(dir, "postmaster.pid"))
	require.True(t, os.IsNotExist(err), "clean shutdown removes postmaster.pid")

	port := freePort(t)
	s, err = pgtest.Start(ctx, pgtest.WithDataDir(dir), pgtest.WithPort(port))
	require.NoError(t, err)
	defer s.Close()
	require.Contains(t, s.URL(), "127.0.0.1:"+strconv.Itoa(port))
	require.Equal(t, 42, queryInt(t, s.URL(), `SELECT v FROM kept`))

	_, err = pgtest.Start(ctx, pgtest.WithDataDir(dir))
	require.ErrorContains(t, err, "already running", "a second server on the same data dir is refused")
}

func TestPersistentRefusesForeignDir(t *testing.T) {
	if os.Getenv("DATABASE_URL") != "" {
		t.Skip("external server: options are ignored")
	}
	dir := searchableTempDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := pgtest.Start(ctx, pgtest.WithDataDir(dir))
	require.ErrorContains(t, err, "not empty")
	b, err := os.ReadFile(filepath.Join(dir, "notes.txt"))
	require.NoError(t, err)
	require.Equal(t, "mine", string(b))
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick()
	require.NoError(t, err)
	return p
}
