package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskpilot/taskpilot/store"
)

// The two statements of taskpilot's write path, copied from store/tasks.go (createTaskSQL)
// and store/transition.go (recordTransitionSQL): one round trip each.
const ceilCreateSQL = `
WITH ins AS (
    INSERT INTO background_tasks
        (uid, namespace, name, task_name, status, desired_state, attempt, last_seq, created_at, updated_at)
    VALUES (@uid, 'ceiling', @uid, 'noop', 'PENDING', 'RUNNING', 0, 1, now(), now())
    ON CONFLICT (uid) DO NOTHING
    RETURNING *
)
INSERT INTO background_task_transitions (task_uid, seq, from_status, to_status, attempt, reason, message, at)
SELECT uid, 1, NULL, 'PENDING', 0, 'Created', '', created_at FROM ins`

const ceilTransitionSQL = `
WITH v AS (
    SELECT CAST(@uid AS text) AS uid, CAST(@seq AS bigint) AS seq, CAST(@from AS text) AS from_status,
           CAST(@prev_attempt AS integer) AS prev_attempt, CAST(@to AS text) AS to_status,
           CAST(@attempt AS integer) AS attempt, CAST(@reason AS text) AS reason, CAST(@message AS text) AS message,
           CAST(@at AS timestamptz) AS at, CAST(@progress AS text) AS progress, CAST(@result AS jsonb) AS result,
           CAST(@start_time AS timestamptz) AS start_time, CAST(@clear_checkpoint AS boolean) AS clear_checkpoint
), upd AS (
    UPDATE background_tasks t SET
        status = v.to_status, attempt = v.attempt, last_seq = v.seq, progress = v.progress, message = v.message,
        result = CASE WHEN v.to_status = 'FINISHED' THEN v.result WHEN v.attempt <> t.attempt THEN NULL ELSE t.result END,
        start_time = COALESCE(v.start_time, t.start_time),
        last_run_time = CASE WHEN v.to_status = 'RUNNING' THEN v.at ELSE t.last_run_time END,
        end_time = CASE WHEN v.to_status IN ('FINISHED', 'FAILED', 'STOPPED') THEN v.at END,
        checkpoint = CASE WHEN v.clear_checkpoint THEN NULL ELSE t.checkpoint END,
        checkpoint_attempt = CASE WHEN v.clear_checkpoint THEN NULL ELSE t.checkpoint_attempt END,
        updated_at = now()
    FROM v
    WHERE t.uid = v.uid AND t.status = v.from_status AND t.attempt = v.prev_attempt
      AND t.last_seq = v.seq - 1 AND t.deleted_at IS NULL
    RETURNING t.uid
)
INSERT INTO background_task_transitions (task_uid, seq, from_status, to_status, attempt, reason, message, at)
SELECT upd.uid, v.seq, v.from_status, v.to_status, v.attempt, v.reason, v.message, v.at
FROM upd CROSS JOIN v`

// pgCeiling inserts n task rows (with their seq-1 history) and records transitions more
// guarded transitions (spread evenly, ending FINISHED), workers goroutines at a time, in a
// fresh database migrated by store.Open: the PostgreSQL ceiling for taskpilot's write mix.
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
	if _, err := pool.Exec(ctx, ceilCreateSQL, pgx.NamedArgs{"uid": uid}); err != nil {
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
		tag, err := pool.Exec(ctx, ceilTransitionSQL, pgx.NamedArgs{
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
