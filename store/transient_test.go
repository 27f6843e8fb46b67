package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestIsTransient(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code} }
	wrap := func(err error) error { return fmt.Errorf("record transition x: %w", err) }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", wrap(ErrNotFound), false},
		{"fenced", wrap(&OwnedError{UID: "x", Owner: owner2}), false},
		{"deleted", wrap(ErrDeleted), false},
		{"conflict", wrap(ErrConflict), false},
		{"invalid input", wrap(pg("22P02")), false},
		{"bad encoding", wrap(pg("22021")), false},
		{"invalid argument", wrap(ErrInvalidArgument), false},
		{"already exists", wrap(ErrAlreadyExists), false},
		{"check violation", wrap(pg("23514")), false},
		{"unique violation", wrap(pg("23505")), false},
		{"fk violation", wrap(pg("23503")), false},
		{"append-only trigger", wrap(pg("23001")), false},
		{"syntax error", wrap(pg("42601")), false},
		{"context canceled", wrap(context.Canceled), false},
		{"plain error", errors.New("boom"), false},
		{"serialization failure", wrap(pg("40001")), true},
		{"deadlock", wrap(pg("40P01")), true},
		{"too many connections", wrap(pg("53300")), true},
		{"admin shutdown", wrap(pg("57P01")), true},
		{"crash shutdown", wrap(pg("57P02")), true},
		{"cannot connect now", wrap(pg("57P03")), true},
		{"statement timeout", wrap(pg("57014")), true},
		{"connection failure class 08", wrap(pg("08006")), true},
		{"deadline exceeded", wrap(context.DeadlineExceeded), true},
		{"connection refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"connection reset", wrap(syscall.ECONNRESET), true},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), true},
		{"bad conn", wrap(driver.ErrBadConn), true},
		{"conn done", wrap(sql.ErrConnDone), true},
		{"pgconn closed", wrap(pgconn.ErrConnClosed), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, IsTransient(tc.err))
		})
	}
}

func TestIsTransientRealRefusedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	_, err = Open(testCtx(t), Config{URL: "postgres://postgres@" + addr + "/postgres?sslmode=disable&connect_timeout=2"})
	require.Error(t, err)
	require.True(t, IsTransient(err), "%v", err)
}
