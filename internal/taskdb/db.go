package taskdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when no row matches.
var ErrNotFound = errors.New("no such task in the database")

// DB is a small connection pool to the taskpilot database. It only reads.
type DB struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url and checks that it answers. Errors never include the
// URL, which may hold a password.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("parse the database URL: it is not a valid PostgreSQL URL")
	}
	// A viewer needs few connections; keep the load on the operator's database small.
	cfg.MaxConns = 4
	// Its sessions are read-only whatever role it connects as (taskpilot_readonly is meant, see
	// docs/schema.md): a reader must never write the record.
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", Describe(url), err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", Describe(url), err)
	}
	return &DB{pool: pool}, nil
}

// Close releases the connections.
func (d *DB) Close() { d.pool.Close() }

// Describe names a database URL without its password, for messages.
func Describe(url string) string {
	pc, err := pgx.ParseConfig(url)
	if err != nil {
		return "(unparsable database URL)"
	}
	return fmt.Sprintf("%s:%d/%s", pc.Host, pc.Port, pc.Database)
}
