package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors; test with errors.Is. None of them is transient.
var (
	// ErrNotFound: no (non-deleted) task with that UID.
	ErrNotFound = errors.New("store: task not found")
	// ErrStaleTransition: the row is not in the state the writer expected
	// (another writer won, or the caller's view is outdated). Retrying the same
	// call cannot succeed; the caller must reload the row.
	ErrStaleTransition = errors.New("store: stale transition")
	// ErrCheckpointTooLarge: checkpoint over MaxCheckpointSize.
	ErrCheckpointTooLarge = errors.New("store: checkpoint too large")
	// ErrResultTooLarge: result over MaxResultSize.
	ErrResultTooLarge = errors.New("store: result too large")
	// ErrAlreadyExists: the UID belongs to a soft-deleted task and cannot be reused.
	ErrAlreadyExists = errors.New("store: task already exists")
	// ErrInvalidArgument: the call was malformed (empty UID, unknown status, bad JSON...).
	ErrInvalidArgument = errors.New("store: invalid argument")
)

// IsTransient reports whether err is likely to go away if the same call is
// retried later: the connection failed or the server is restarting,
// overloaded, or aborted the transaction for concurrency reasons. It is false
// for the store's own sentinels, constraint violations, and context
// cancellation (the caller gave up), and true for an expired deadline, which
// in practice means the database did not answer in time.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	for _, permanent := range []error{ErrNotFound, ErrStaleTransition, ErrCheckpointTooLarge,
		ErrResultTooLarge, ErrAlreadyExists, ErrInvalidArgument} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientSQLState(pgErr.Code)
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET,
		syscall.ECONNABORTED, syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// transientSQLState classifies PostgreSQL error codes.
func transientSQLState(code string) bool {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"53300", // too_many_connections
		"53400", // configuration_limit_exceeded
		"55P03", // lock_not_available
		"57014", // query_canceled (statement_timeout)
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03": // cannot_connect_now (starting up / recovering)
		return true
	}
	// Class 08: connection exception.
	return len(code) == 5 && code[:2] == "08"
}
