package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

const (
	// SchemaVersionTable is goose's bookkeeping table. A taskpilot-specific
	// name keeps it apart from other goose users sharing the database.
	SchemaVersionTable = "taskpilot_schema_version"
	// migrationLockID is the PostgreSQL advisory lock key held while
	// migrating, so replicas starting together migrate one at a time. It is
	// distinct from goose's default key for the same reason as the table name.
	migrationLockID int64 = 0x7461736b70696c // "taskpil"
	// lockPollSeconds and lockPolls bound the wait for another replica's
	// migration: poll every second for up to five minutes (ctx can end it sooner).
	lockPollSeconds = 1
	lockPolls       = 300
)

// Migrate brings the schema up to date with the migrations embedded in this
// binary. It is idempotent and safe to run concurrently from several
// processes: a session advisory lock serialises them, and later ones find
// nothing to do. db must be a PostgreSQL database/sql handle (pgx stdlib).
func Migrate(ctx context.Context, db *sql.DB) error {
	return migrate(ctx, db, logr.Discard())
}

func migrate(ctx context.Context, db *sql.DB, log logr.Logger) error {
	return migrateTo(ctx, db, log, 0)
}

// migrateWith migrates through the owner's URL when cfg names one, else through db.
func migrateWith(ctx context.Context, cfg Config, db *sql.DB, log logr.Logger) error {
	if cfg.MigrateURL == "" || cfg.MigrateURL == cfg.URL {
		return migrate(ctx, db, log)
	}
	return MigrateURL(ctx, cfg.MigrateURL, log)
}

// MigrateURL brings the schema of the database at url (the owner's) up to date, over a
// connection of its own: what `taskpilot migrate` and an operator with --migrate-database-url
// run.
func MigrateURL(ctx context.Context, url string, log logr.Logger) error {
	pgxCfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse the migration database URL: %w", err)
	}
	db := stdlib.OpenDB(*pgxCfg)
	defer func() { _ = db.Close() }()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to the database to migrate it: %w", err)
	}
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	return migrate(ctx, db, log)
}

// migrateTo applies the migrations up to version (0: all of them); tests use it to build a
// database as an older operator left it.
func migrateTo(ctx context.Context, db *sql.DB, log logr.Logger, version int64) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("open embedded migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID),
		lock.WithLockTimeout(lockPollSeconds, lockPolls),
	)
	if err != nil {
		return fmt.Errorf("create migration lock: %w", err)
	}
	provider, err := goose.NewProvider(database.DialectPostgres, db, fsys,
		goose.WithTableName(SchemaVersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(gooseLogger{log}),
	)
	if err != nil {
		return fmt.Errorf("create migration provider: %w", err)
	}
	var results []*goose.MigrationResult
	if version > 0 {
		results, err = provider.UpTo(ctx, version)
	} else {
		results, err = provider.Up(ctx)
	}
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		log.Info("applied migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// gooseLogger routes goose output to logr at debug verbosity.
type gooseLogger struct{ log logr.Logger }

func (l gooseLogger) Printf(format string, v ...any) { l.log.V(1).Info(fmt.Sprintf(format, v...)) }
func (l gooseLogger) Fatalf(format string, v ...any) { l.log.Error(nil, fmt.Sprintf(format, v...)) }
