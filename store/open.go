package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Pool defaults used when Config leaves a field zero.
const (
	DefaultMaxOpenConns    = 16
	DefaultConnMaxLifetime = 30 * time.Minute
)

// The roles the schema grants to (migration 00005): members of RuntimeRole run the operator,
// members of ReadOnlyRole read (the plugin, the web view, SQL users); the owner migrates.
const (
	RuntimeRole  = "taskpilot_runtime"
	ReadOnlyRole = "taskpilot_readonly"
)

// Config configures Open.
type Config struct {
	// URL is a postgres:// URL or key=value DSN understood by pgx: the role the operator runs
	// as (a member of RuntimeRole, or the owner).
	URL string
	// MigrateURL is the owner's URL, for migrations ("": URL, when the operator runs as the
	// owner).
	MigrateURL string
	// MaxOpenConns bounds the pool (0: DefaultMaxOpenConns). Size it for the
	// number of concurrent writers plus readers; extra callers queue, still
	// bounded by their ctx deadlines.
	MaxOpenConns int
	// MaxIdleConns (0: same as MaxOpenConns).
	MaxIdleConns int
	// ConnMaxLifetime recycles connections, e.g. after a failover (0: DefaultConnMaxLifetime).
	ConnMaxLifetime time.Duration
	// Logger receives migration and slow/failed query logs (zero value: discard).
	Logger logr.Logger
	// QueryTracer, if set, observes every statement sent to PostgreSQL
	// (metrics, tracing; the benchmarks count round trips with it).
	QueryTracer pgx.QueryTracer

	// prepareStmt enables GORM's prepared-statement cache. Off: pgx already
	// caches prepared statements per connection, and the benchmarks showed
	// GORM's extra layer only costs. Unexported so benchmarks can compare.
	prepareStmt bool
}

// Repository records task lifecycles in PostgreSQL through GORM. Consumers define the small
// interface of the methods they use where they use them.
type Repository struct {
	db    *gorm.DB
	sqlDB *sql.DB
	log   logr.Logger
	cfg   Config
	// role is the role the URL logs in as, for errors that name it.
	role string
}

// Open connects, checks the connection, applies pending migrations and
// returns a ready repository. Close it when done.
func Open(ctx context.Context, cfg Config) (*Repository, error) {
	r, err := OpenLazy(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.sqlDB.PingContext(ctx); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := r.Migrate(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// OpenLazy returns a repository without connecting: its connections are made when statements
// need them, so a database that is down now fails those statements, not the caller. The
// operator starts this way and runs Migrate, with retries, before it owns tasks: it never
// exits because PostgreSQL is away (it reports not ready). Close it when done.
func OpenLazy(cfg Config) (*Repository, error) {
	pgxCfg, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if cfg.QueryTracer != nil {
		pgxCfg.Tracer = cfg.QueryTracer
	}
	log := cfg.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}

	sqlDB := stdlib.OpenDB(*pgxCfg)
	maxOpen := cfg.MaxOpenConns
	if maxOpen <= 0 {
		maxOpen = DefaultMaxOpenConns
	}
	maxIdle := cfg.MaxIdleConns
	if maxIdle <= 0 {
		maxIdle = maxOpen
	}
	lifetime := cfg.ConnMaxLifetime
	if lifetime <= 0 {
		lifetime = DefaultConnMaxLifetime
	}
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(maxIdle)
	sqlDB.SetConnMaxLifetime(lifetime)

	gdb, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		// Every write is one statement or an explicit transaction already.
		SkipDefaultTransaction: true,
		PrepareStmt:            cfg.prepareStmt,
		DisableAutomaticPing:   true,
		Logger:                 newGormLogger(log),
	})
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("initialise gorm: %w", err)
	}
	return &Repository{db: gdb, sqlDB: sqlDB, log: log, cfg: cfg, role: pgxCfg.User}, nil
}

// Migrate applies the pending migrations, as the owner when Config.MigrateURL says so.
func (r *Repository) Migrate(ctx context.Context) error {
	return migrateWith(ctx, r.cfg, r.sqlDB, r.log)
}

// Close releases the connection pool.
func (r *Repository) Close() error {
	if err := r.sqlDB.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// Ping checks that the database answers within ctx.
func (r *Repository) Ping(ctx context.Context) error {
	if err := r.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}
