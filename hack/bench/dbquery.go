package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Every query of the harness carries the /*bench*/ marker so the cost table
// (pg_stat_statements) counts only the operator's statements.

func countStatus(ctx context.Context, pool *pgxpool.Pool, ns, status string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `/*bench*/ SELECT count(*) FROM background_tasks WHERE namespace = $1 AND status = $2`, ns, status).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s rows: %w", status, err)
	}
	return n, nil
}

// historyCheck counts tasks in status whose history is complete: seq 1..last_seq all present
// and the last one goes to status.
func historyCheck(ctx context.Context, pool *pgxpool.Pool, ns, status string) (complete, transitions int, lastCommit time.Time, err error) {
	err = pool.QueryRow(ctx, `/*bench*/
SELECT count(*) FILTER (WHERE h.n = t.last_seq AND h.maxseq = t.last_seq AND h.last_to = t.status),
       COALESCE(sum(h.n), 0), max(t.updated_at)
FROM background_tasks t
JOIN LATERAL (SELECT count(*) AS n, max(seq) AS maxseq,
                     (array_agg(to_status ORDER BY seq DESC))[1] AS last_to
              FROM background_task_transitions WHERE task_uid = t.uid) h ON true
WHERE t.namespace = $1 AND t.status = $2`, ns, status).Scan(&complete, &transitions, &lastCommit)
	if err != nil {
		err = fmt.Errorf("check history: %w", err)
	}
	return
}

// transitionRow is one recorded transition.
type transitionRow struct {
	name     string
	seq      int64
	from, to string
	at       time.Time
}

func transitions(ctx context.Context, pool *pgxpool.Pool, ns string, since time.Time) ([]transitionRow, error) {
	rows, err := pool.Query(ctx, `/*bench*/
SELECT t.name, h.seq, COALESCE(h.from_status, ''), h.to_status, h.at
FROM background_task_transitions h JOIN background_tasks t ON t.uid = h.task_uid
WHERE t.namespace = $1 AND h.at >= $2`, ns, since)
	if err != nil {
		return nil, fmt.Errorf("read transitions: %w", err)
	}
	defer rows.Close()
	var out []transitionRow
	for rows.Next() {
		var r transitionRow
		if err := rows.Scan(&r.name, &r.seq, &r.from, &r.to, &r.at); err != nil {
			return nil, fmt.Errorf("scan transition: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// pgCounters are cumulative PostgreSQL counters of one database.
type pgCounters struct {
	xactCommit int64
	statements int64 // pg_stat_statements calls, harness queries excluded
}

func readPGCounters(ctx context.Context, pool *pgxpool.Pool) (pgCounters, error) {
	var c pgCounters
	err := pool.QueryRow(ctx, `/*bench*/
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
       (SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%/*bench*/%')`).Scan(&c.xactCommit, &c.statements)
	if err != nil {
		return c, fmt.Errorf("read pg counters: %w", err)
	}
	return c, nil
}

// resetStatements clears pg_stat_statements (cluster-wide; stages run one at a time).
func resetStatements(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `/*bench*/ SELECT pg_stat_statements_reset()`); err != nil {
		return fmt.Errorf("reset pg_stat_statements: %w", err)
	}
	return nil
}

// stmtCount is one statement shape and how often it ran.
type stmtCount struct {
	calls int64
	query string
}

func topStatements(ctx context.Context, pool *pgxpool.Pool, limit int) ([]stmtCount, error) {
	rows, err := pool.Query(ctx, `/*bench*/
SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%/*bench*/%'
ORDER BY calls DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("top statements: %w", err)
	}
	defer rows.Close()
	var out []stmtCount
	for rows.Next() {
		var s stmtCount
		if err := rows.Scan(&s.calls, &s.query); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// lastResumed is when the last task of ns was resumed (RUNNING -> RUNNING) after since, as its
// transition says, or now when that cannot be read: called once every task has resumed, it is
// when the last one did, not when the poll noticed.
func lastResumed(ctx context.Context, st *stage, ns string, since time.Time) time.Time {
	now := time.Now()
	var last time.Time
	err := st.pool.QueryRow(ctx, `/*bench*/ SELECT max(h.at) FROM background_task_transitions h JOIN background_tasks t ON t.uid = h.task_uid
WHERE t.namespace = $1 AND h.from_status = 'RUNNING' AND h.to_status = 'RUNNING' AND h.at > $2`, ns, since).Scan(&last)
	if err != nil || !last.Before(now) {
		return now
	}
	return last
}
