package witness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskpilot/taskpilot/runner"
)

// Recorder writes witness rows for one operator process over its own pool.
type Recorder struct {
	pool  *pgxpool.Pool
	pid   int
	boot  int64 // start of this process: makes execution ids unique even if a pid is reused
	execs atomic.Int64
}

// NewRecorder opens a pool to url. It does not connect yet (the pool connects on first use),
// so an operator can start while PostgreSQL is down.
func NewRecorder(url string) (*Recorder, error) {
	if url == "" {
		return nil, fmt.Errorf("no witness database: set %s", URLEnv)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("witness database URL: %w", err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("witness pool: %w", err)
	}
	return &Recorder{pool: pool, pid: os.Getpid(), boot: time.Now().UnixNano()}, nil
}

// Close closes the pool.
func (r *Recorder) Close() { r.pool.Close() }

// execution is one Run call being recorded.
type execution struct {
	r       *Recorder
	uid     string
	attempt int
	id      string
}

// begin records the start of an execution resuming at step. It retries until the row is
// written or ctx ends: no work is done before the start is on record.
func (r *Recorder) begin(ctx context.Context, ctl runner.Control, step int) (*execution, error) {
	e := &execution{r: r, uid: string(ctl.Key()), attempt: ctl.Attempt(),
		id: fmt.Sprintf("%d-%x-%d", r.pid, r.boot, r.execs.Add(1))}
	if err := e.insertUntil(ctx, KindStart, step, nil, ""); err != nil {
		return nil, err
	}
	return e, nil
}

// mark records that step is about to be done, retrying until the row is written or ctx ends;
// the caller does the step only after mark returned nil.
func (e *execution) mark(ctx context.Context, step int) error {
	return e.insertUntil(ctx, KindMark, step, nil, "")
}

// end records how the execution ended. A completion is evidence the checks cannot do without,
// so it is retried for up to two minutes whatever happens to ctx (a database outage lasts 30 s);
// a failed or cancelled end is retried briefly.
func (e *execution) end(ctx context.Context, step int, cause error) {
	// A completion is retried through any database outage of a chaos run (up to 10 minutes): the
	// run does not return, so the operator does not record it Finished, before its end row is
	// written. An end of another kind gives up sooner (the process may be going away).
	completed := cause == nil
	detail, patience := "", 10*time.Minute
	if !completed {
		detail, patience = cause.Error(), 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), patience)
	defer cancel()
	_ = e.insertUntil(ctx, KindEnd, step, &completed, detail)
}

// insertUntil writes one row, retrying with backoff until it succeeds or ctx ends. The time
// recorded is taken just before the attempt that succeeds, so a process that was frozen while
// retrying cannot record a time before it woke up. An attempt whose commit the client did not
// see (an error after the commit) is followed by one that finds the row: it keeps the later
// time, when the work after it really began, so an overlap with another execution is never
// hidden.
func (e *execution) insertUntil(ctx context.Context, kind string, step int, completed *bool, detail string) error {
	const insertSQL = `INSERT INTO chaos_witness (task_uid, attempt, exec_id, pid, kind, step, completed, detail, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (exec_id, kind, step) DO UPDATE SET at = greatest(chaos_witness.at, EXCLUDED.at),
    completed = EXCLUDED.completed, detail = EXCLUDED.detail`
	return e.r.execUntil(ctx, insertSQL, func() []any {
		return []any{e.uid, e.attempt, e.id, e.r.pid, kind, step, completed, detail, time.Now()}
	})
}

// execUntil runs sql, with the arguments args gives for each attempt (a time in them is taken
// just before the attempt), retrying with backoff until it succeeds or ctx ends.
func (r *Recorder) execUntil(ctx context.Context, sql string, args func() []any) error {
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := r.pool.Exec(callCtx, sql, args()...)
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}
