package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"

	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// postgres is the database the operator uses: a local server this process runs (data in
// dir/postgres), or an existing one named by DATABASE_URL (server is nil then). On the local
// server each part uses the role docs/schema.md gives it: the operator runs as taskpilot (a
// member of taskpilot_runtime), the superuser migrates, and the env file's DATABASE_URL, for
// psql and the kubectl plugin, is taskpilot_reader's (a member of taskpilot_readonly).
type postgres struct {
	server                     *pgtest.Server
	url, migrateURL, readerURL string
}

// startPostgres starts the local server and creates the taskpilot database if missing, or,
// when DATABASE_URL is set, checks that the server it names answers.
func startPostgres(cfg config, dir string, log logr.Logger) (*postgres, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if cfg.databaseURL != "" {
		log.Info("DATABASE_URL is set: using that database, not starting PostgreSQL", "database", redactURL(cfg.databaseURL))
		if err := ping(ctx, cfg.databaseURL); err != nil {
			return nil, fmt.Errorf("cannot connect to DATABASE_URL %s: %w (unset DATABASE_URL to use a local server instead)", redactURL(cfg.databaseURL), err)
		}
		return &postgres{url: cfg.databaseURL, migrateURL: cfg.databaseURL, readerURL: cfg.databaseURL}, nil
	}

	dataDir := filepath.Join(dir, "postgres")
	_, statErr := os.Stat(filepath.Join(dataDir, "PG_VERSION"))
	fresh := statErr != nil
	srv, err := pgtest.Start(ctx,
		pgtest.WithDataDir(dataDir),
		pgtest.WithPort(cfg.postgresPort),
		pgtest.WithProcessGroup(),
	)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	pg := &postgres{server: srv}
	created, err := ensureDatabase(ctx, srv.URL(), databaseName)
	if err == nil {
		err = ensureRoles(ctx, srv.URL())
	}
	if err == nil {
		pg.migrateURL, err = withDatabase(srv.URL(), databaseName, "")
	}
	if err == nil {
		pg.url, err = withDatabase(srv.URL(), databaseName, runtimeLogin)
	}
	if err == nil {
		pg.readerURL, err = withDatabase(srv.URL(), databaseName, readerLogin)
	}
	if err != nil {
		return nil, joinStop(err, pg.stop())
	}
	state := "existing data"
	if fresh {
		state = "new cluster"
	}
	log.Info("PostgreSQL up in "+since(start), "data", state, "database-created", created, "log", srv.LogPath(), "url", pg.url)
	return pg, nil
}

// stop shuts the local server down cleanly (its data is kept); a no-op for DATABASE_URL.
func (p *postgres) stop() error {
	if p.server == nil {
		return nil
	}
	if err := p.server.Close(); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	return nil
}

// ensureDatabase creates database name unless it exists, and reports whether it did.
func ensureDatabase(ctx context.Context, adminURL, name string) (bool, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return false, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for database %s: %w", name, err)
	}
	if exists {
		return false, nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return false, fmt.Errorf("create database %s: %w", name, err)
	}
	return true, nil
}

// The local server's login roles (it trusts local connections: no passwords).
const (
	runtimeLogin = "taskpilot"
	readerLogin  = "taskpilot_reader"
)

// ensureRoles creates the schema's group roles and the local login roles that use them, unless
// they exist (migrations grant the group roles their rights; see docs/schema.md, "Roles").
func ensureRoles(ctx context.Context, adminURL string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, r := range []struct{ name, attrs string }{
		{store.RuntimeRole, "NOLOGIN"}, {store.ReadOnlyRole, "NOLOGIN"},
		{runtimeLogin, "LOGIN IN ROLE " + store.RuntimeRole}, {readerLogin, "LOGIN IN ROLE " + store.ReadOnlyRole},
	} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, r.name).Scan(&exists); err != nil {
			return fmt.Errorf("look for role %s: %w", r.name, err)
		}
		if exists {
			continue
		}
		if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{r.name}.Sanitize()+" "+r.attrs); err != nil {
			return fmt.Errorf("create role %s: %w", r.name, err)
		}
	}
	return nil
}

// withDatabase is rawURL with its database replaced by name, and its user by user when set.
func withDatabase(rawURL, name, user string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	u.Path = "/" + name
	if user != "" {
		u.User = url.User(user)
	}
	return u.String(), nil
}

// ping opens and closes one connection.
func ping(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// redactURL names a database for logs without its password (URLs and key=value strings).
func redactURL(raw string) string {
	if pc, err := pgx.ParseConfig(raw); err == nil {
		return fmt.Sprintf("%s:%d/%s (user %s)", pc.Host, pc.Port, pc.Database, pc.User)
	}
	return "(unparsable database URL)"
}
