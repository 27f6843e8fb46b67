package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskpilot/taskpilot/test/pgtest"
)

// pgSettings are the server settings of the benchmark's PostgreSQL: durable like production
// (fsync, synchronous_commit, full_page_writes on) plus pg_stat_statements for the cost table.
func pgSettings() [][2]string {
	return [][2]string{
		{"fsync", "on"},
		{"synchronous_commit", "on"},
		{"full_page_writes", "on"},
		{"shared_preload_libraries", "pg_stat_statements"},
		{"pg_stat_statements.track", "top"}, // client round trips only, not FK checks inside them
		{"max_connections", "300"},
	}
}

// postgres is the benchmark's throwaway server; each stage gets a fresh database.
type postgres struct {
	srv     *pgtest.Server
	pid     int // postmaster
	version string
}

func startPostgres(ctx context.Context) (*postgres, error) {
	var opts []pgtest.Option
	for _, kv := range pgSettings() {
		opts = append(opts, pgtest.WithSetting(kv[0], kv[1]))
	}
	opts = append(opts, pgtest.WithProcessGroup())
	srv, err := pgtest.Start(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	p := &postgres{srv: srv}
	conn, err := pgx.Connect(ctx, srv.URL())
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("connect PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&p.version); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("query PostgreSQL: %w", err)
	}
	if err := p.findPostmaster(ctx, conn); err != nil {
		_ = srv.Close()
		return nil, err
	}
	return p, nil
}

// findPostmaster records the postmaster's pid (the parent of conn's backend), whose process
// group's CPU the scenarios measure.
func (p *postgres) findPostmaster(ctx context.Context, conn *pgx.Conn) error {
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return fmt.Errorf("query PostgreSQL: %w", err)
	}
	st, err := readProcStat(backend)
	if err != nil {
		return err
	}
	p.pid = st.ppid
	return nil
}

// restart starts the server again after a stop (the outage scenario) and finds its new
// postmaster.
func (p *postgres) restart(ctx context.Context) error {
	if err := p.srv.Restart(); err != nil {
		return fmt.Errorf("start PostgreSQL again: %w", err)
	}
	conn, err := pgx.Connect(ctx, p.srv.URL())
	if err != nil {
		return fmt.Errorf("connect PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	return p.findPostmaster(ctx, conn)
}

func (p *postgres) close() error { return p.srv.Close() }

// newDatabase creates database name with pg_stat_statements and returns its URL and a pool.
func (p *postgres) newDatabase(ctx context.Context, name string) (string, *pgxpool.Pool, error) {
	url, err := p.srv.CreateDatabase(ctx, name)
	if err != nil {
		return "", nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return "", nil, fmt.Errorf("parse %s: %w", name, err)
	}
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return "", nil, fmt.Errorf("pool for %s: %w", name, err)
	}
	if _, err := pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		pool.Close()
		return "", nil, fmt.Errorf("create extension pg_stat_statements: %w", err)
	}
	return url, pool, nil
}
