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

	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors; test with errors.Is. None of them is transient.
var (
	// ErrNotFound: no task with that UID.
	ErrNotFound = errors.New("store: task not found")
	// ErrDeleted: the task's row is soft-deleted (its BackgroundTask is gone); nothing more is
	// recorded for it.
	ErrDeleted = errors.New("store: task deleted")
	// ErrFenced: the row belongs to another owner (a higher fencing token claimed it, or the
	// caller never owned it). The caller must stop running the task; nothing it writes lands.
	ErrFenced = errors.New("store: task owned by another operator")
	// ErrConflict: the row is not in the state the writer expected although the writer owns
	// it (its view is outdated). Retrying the same call cannot succeed; reload the row.
	ErrConflict = errors.New("store: row changed")
	// ErrAlreadyExists: the UID belongs to a soft-deleted task and cannot be reused.
	ErrAlreadyExists = errors.New("store: task already exists")
	// ErrInvalidArgument: the call was malformed (empty UID, illegal transition, bad JSON...).
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrMemberLost: the process's membership row was released or is missing: it must not
	// renew it (it stopped owning tasks under that epoch).
	ErrMemberLost = errors.New("store: membership row released or missing")
)

// OwnedError says who holds a task that a Claim could not take.
type OwnedError struct {
	UID   string
	Owner Owner
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("store: task %s is owned by %s (epoch %d)", e.UID, e.Owner.Name, e.Owner.Epoch)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *OwnedError) Is(target error) bool { return target == ErrFenced }

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
	for _, permanent := range []error{ErrNotFound, ErrDeleted, ErrFenced, ErrConflict, ErrAlreadyExists, ErrInvalidArgument, ErrMemberLost} {
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
