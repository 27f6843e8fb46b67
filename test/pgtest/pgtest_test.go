package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskpilot/taskpilot/test/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	code := pgtest.Main(m, &srv)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func queryInt(t *testing.T, url, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&n))
	return n
}

func TestNewDatabaseIsolated(t *testing.T) {
	a := srv.NewDatabase(t)
	b := srv.NewDatabase(t)
	require.NotEqual(t, a, b)
	require.Equal(t, 1, queryInt(t, a, "SELECT 1"))
	require.Equal(t, 1, queryInt(t, b, "SELECT 1"))
}

func TestDropOnCleanup(t *testing.T) {
	var url string
	t.Run("inner", func(t *testing.T) { url = srv.NewDatabase(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pgx.Connect(ctx, url)
	require.Error(t, err, "database must be dropped after the subtest")
}

func TestStopRestartClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgtest.Start(ctx)
	require.NoError(t, err)
	defer s.Close()
	if err := s.Stop(pgtest.StopImmediate); errors.Is(err, pgtest.ErrExternalServer) {
		t.Skip("external server")
	} else {
		require.NoError(t, err)
	}
	_, err = pgx.Connect(ctx, s.URL())
	require.Error(t, err)
	require.NoError(t, s.Restart())
	require.Equal(t, 1, queryInt(t, s.URL(), "SELECT 1"))
	require.NoError(t, s.Stop(pgtest.StopFast))
	require.NoError(t, s.Restart())

	dir := s.LogPath()
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "temp dir removed")
	_, err = pgx.Connect(ctx, s.URL())
	require.Error(t, err, "server gone after Close")
}
