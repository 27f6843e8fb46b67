package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskpilot/taskpilot/store"
)

// pgCeiling inserts n task rows (with their seq-1 history) and records transitions more
// guarded transitions (spread evenly, ending FINISHED), workers goroutines at a time, in a
// fresh database migrated by store.Open: the PostgreSQL ceiling for taskpilot's write mix,
// running the store's own statements (store.CreateTaskSQL, store.RecordTransitionSQL) through
// bare pgx, without GORM.
func pgCeiling(ctx context.Context, pg *postgres, dbName string, n, transitions, workers int) (ceiling, error) {
	url, pool, err := pg.newDatabase(ctx, dbName)
	if err != nil {
		return ceiling{}, err
	}
	defer pool.Close()
	repo, err := store.Open(ctx, store.Config{URL: url, MaxOpenConns: 2})
	if err != nil {
		return ceiling{}, fmt.Errorf("migrate ceiling database: %w", err)
	}
	_ = repo.Close()
	start := time.Now()
	err = parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		return ceilingTask(ctx, pool, fmt.Sprintf("ceil-%06d", i), share(transitions, n, i))
	})
	if err != nil {
		return ceiling{}, err
	}
	el := time.Since(start)
	return ceiling{
		tasks: n, writes: n + transitions, elapsed: el,
		perTask:  fmt.Sprintf("1 insert + %.2f guarded update+insert (one statement each)", float64(transitions)/float64(n)),
		tasksSec: float64(n) / el.Seconds(),
	}, nil
}

func ceilingTask(ctx context.Context, pool *pgxpool.Pool, uid string, k int) error {
	if _, err := pool.Exec(ctx, store.CreateTaskSQL, pgx.NamedArgs{
		"uid": uid, "namespace": "ceiling", "name": uid, "task_name": "noop", "desired_state": "RUNNING",
	}); err != nil {
		return fmt.Errorf("ceiling create row: %w", err)
	}
	from := "PENDING"
	for j := range k {
		to := "RUNNING"
		switch {
		case j == k-1:
			to = "FINISHED"
		case from == "RUNNING":
			to = "PAUSED"
		}
		var result any
		if to == "FINISHED" {
			result = `{}`
		}
		tag, err := pool.Exec(ctx, store.RecordTransitionSQL, pgx.NamedArgs{
			"uid": uid, "seq": int64(j + 2), "from": from, "prev_attempt": min(j, 1), "to": to, "attempt": 1,
			"reason": "Bench", "message": "", "at": time.Now(), "progress": "", "result": result,
			"start_time": nil, "clear_checkpoint": false,
		})
		if err != nil {
			return fmt.Errorf("ceiling transition: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("ceiling transition %s seq %d matched %d rows", uid, j+2, tag.RowsAffected())
		}
		from = to
	}
	return nil
}
