package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/pgtext"
)

// recordTransitionsSQL is the hot path: one statement, hence one implicit transaction, one
// round trip and one commit, for one task's transition or for those of many tasks. It holds no
// lifecycle policy: every column value is computed in Go by lifecycle.Apply and passed in, as a
// JSON array of writes. The UPDATE matches a row only when it is where its writer believes it
// is (status, attempt, last_seq) and still belongs to the writer's fencing token; the INSERT
// appends history only for the rows the UPDATE matched, so a row and its history never
// disagree, and a row that does not match is left alone while the others commit (RETURNING
// says which did). Concurrent writers serialise on the row lock and the loser re-checks the
// WHERE clause against the winner's row (READ COMMITTED), matching nothing.
const recordTransitionsSQL = `
WITH w AS (
    SELECT * FROM jsonb_to_recordset(CAST(@writes AS jsonb)) AS w(
        uid text, epoch bigint, prev_seq bigint, from_status text, prev_attempt integer,
        seq bigint, to_status text, attempt integer, reason text, message text, at timestamptz,
        start_time timestamptz, end_time timestamptz, last_run_time timestamptz, retry_at timestamptz,
        retries integer, restart_generation bigint, result text, progress text, run_span text,
        keep_checkpoint boolean, leaves_queue boolean)
), upd AS (
    UPDATE background_tasks t SET
        status                      = w.to_status,
        attempt                     = w.attempt,
        reason                      = w.reason,
        message                     = w.message,
        last_seq                    = w.seq,
        start_time                  = w.start_time,
        end_time                    = w.end_time,
        last_run_time               = w.last_run_time,
        retry_at                    = w.retry_at,
        retries                     = w.retries,
        observed_restart_generation = w.restart_generation,
        transitioned_at             = w.at,
        result                      = CAST(w.result AS jsonb),
        progress                    = COALESCE(w.progress, t.progress),
        run_span                    = COALESCE(w.run_span, t.run_span),
        checkpoint                  = CASE WHEN w.keep_checkpoint THEN t.checkpoint END,
        checkpoint_attempt          = CASE WHEN w.keep_checkpoint THEN t.checkpoint_attempt END,
        queue_state                 = CASE WHEN w.leaves_queue THEN '' ELSE t.queue_state END,
        updated_at                  = now()
    FROM w
    -- The uid is the only condition the planner can join on, so each write is an index probe
    -- of the unique uid: written as equalities the guards were hashable too, and with a
    -- selective-looking owner_epoch it chose to scan every row of that owner and hash them.
    WHERE t.uid = w.uid
      AND (t.last_seq, t.status, t.attempt, t.owner_epoch) IS NOT DISTINCT FROM (w.prev_seq, w.from_status, w.prev_attempt, w.epoch)
      AND t.deleted_at IS NULL
    RETURNING t.uid
)
INSERT INTO background_task_transitions
    (task_uid, seq, from_status, to_status, attempt, reason, message, at, owner_epoch, restart_generation, retry_at)
SELECT w.uid, w.seq, w.from_status, w.to_status, w.attempt, w.reason, w.message, w.at, w.epoch,
       w.restart_generation, w.retry_at
FROM w JOIN upd ON upd.uid = w.uid
RETURNING task_uid`

// batchedTransition is one write, a row of recordTransitionsSQL's JSON array. Times are cut to
// microseconds, PostgreSQL's precision, in UTC (RFC 3339 offsets have no seconds, some zones'
// do).
type batchedTransition struct {
	UID               string     `json:"uid"`
	Epoch             int64      `json:"epoch"`
	PrevSeq           int64      `json:"prev_seq"`
	From              string     `json:"from_status"`
	PrevAttempt       int        `json:"prev_attempt"`
	Seq               int64      `json:"seq"`
	To                string     `json:"to_status"`
	Attempt           int        `json:"attempt"`
	Reason            string     `json:"reason"`
	Message           string     `json:"message"`
	At                time.Time  `json:"at"`
	StartTime         *time.Time `json:"start_time,omitempty"`
	EndTime           *time.Time `json:"end_time,omitempty"`
	LastRunTime       *time.Time `json:"last_run_time,omitempty"`
	RetryAt           *time.Time `json:"retry_at,omitempty"`
	Retries           int        `json:"retries"`
	RestartGeneration int64      `json:"restart_generation"`
	Result            *string    `json:"result,omitempty"` // text: as a JSON value, null would be SQL NULL
	Progress          *string    `json:"progress,omitempty"`
	RunSpan           *string    `json:"run_span,omitempty"`
	KeepCheckpoint    bool       `json:"keep_checkpoint"`
	LeavesQueue       bool       `json:"leaves_queue"`
}

// transitionRow is the row w leaves behind: the columns after the transition, as
// lifecycle.Apply computes them.
func transitionRow(w TransitionWrite) batchedTransition {
	tr := w.Transition
	next := lifecycle.Apply(w.Prev, tr)
	b := batchedTransition{
		UID: w.UID, Epoch: w.Owner.Epoch, PrevSeq: w.Prev.Seq, From: string(tr.From), PrevAttempt: w.Prev.Attempt,
		Seq: tr.Seq, To: string(next.Status), Attempt: next.Attempt, Reason: next.Reason,
		Message: pgtext.Text(next.Message, lifecycle.MaxMessageChars), At: *optTime(tr.At),
		StartTime: optTime(next.StartTime), EndTime: optTime(next.EndTime), LastRunTime: optTime(next.LastRunTime),
		RetryAt: optTime(next.RetryAt), Retries: next.Retries, RestartGeneration: next.RestartGeneration,
		KeepCheckpoint: !lifecycle.NewAttempt(w.Prev, tr), LeavesQueue: LeavesQueue(tr.From, next.Status),
	}
	if next.Status == lifecycle.Finished && len(w.Result) > 0 {
		r := string(w.Result)
		b.Result = &r
	}
	switch {
	case w.Progress != nil:
		p := pgtext.Text(*w.Progress, lifecycle.MaxProgressChars)
		b.Progress = &p
	case lifecycle.NewAttempt(w.Prev, tr):
		p := "" // a new attempt has reported nothing yet
		b.Progress = &p
	}
	if w.Span != "" {
		b.RunSpan = &w.Span
	}
	return b
}

// optTime maps the lifecycle's zero time to SQL NULL.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t
}

// recordBatch runs recordTransitionsSQL over rows and returns the uids it recorded. A deadlock
// with another statement that locks many task rows (an admission, a claim) is retried once at
// once: the other one has gone by then.
func (r *Repository) recordBatch(ctx context.Context, rows []batchedTransition) ([]string, error) {
	doc, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("record %d transitions: encode: %w", len(rows), err)
	}
	for try := 0; ; try++ {
		recorded, err := scanAll(r.db.WithContext(ctx).Raw(recordTransitionsSQL, map[string]any{"writes": string(doc)}),
			func(rows *sql.Rows, uid *string) error { return rows.Scan(uid) })
		var pgErr *pgconn.PgError
		if try == 0 && errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001") {
			continue
		}
		return recorded, err
	}
}

// RecordTransitions records the transitions of many tasks, each as RecordTransition would, in
// one statement when it can: errs[i] is what RecordTransition(ws[i]) would have returned. The
// writes must be of distinct tasks. A write whose row does not match is explained as
// RecordTransition explains it (a replay is nil), and does not hold back the others. When the
// statement fails for good (a constraint one write violates), each write is retried on its own,
// so only the bad one fails; when it fails for the moment, every write gets that error.
func (r *Repository) RecordTransitions(ctx context.Context, ws []TransitionWrite) []error {
	errs := make([]error, len(ws))
	if len(ws) == 1 {
		errs[0] = r.RecordTransition(ctx, ws[0])
		return errs
	}
	rows := make([]batchedTransition, 0, len(ws))
	at := make([]int, 0, len(ws)) // the writes in rows
	seen := make(map[string]bool, len(ws))
	for i, w := range ws {
		tr := w.Transition
		switch {
		case w.UID == "" || tr.Seq != w.Prev.Seq+1 || tr.From != w.Prev.Status || w.Owner.Epoch == 0 || tr.At.IsZero():
			errs[i] = r.RecordTransition(ctx, w) // the same error, without a round trip
		case seen[w.UID]:
			errs[i] = fmt.Errorf("record transition %s seq %d: twice in one batch: %w", w.UID, tr.Seq, ErrInvalidArgument)
		default:
			seen[w.UID] = true
			rows = append(rows, transitionRow(w))
			at = append(at, i)
		}
	}
	if len(rows) == 0 {
		return errs
	}
	// In uid order, the order the rows are locked in, so that two batches cannot deadlock.
	slices.SortFunc(rows, func(a, b batchedTransition) int { return cmp.Compare(a.UID, b.UID) })
	recorded, err := r.recordBatch(ctx, rows)
	if err != nil {
		for _, i := range at {
			switch {
			case ctx.Err() != nil: // time is up: the write was not refused, it was cut short
				errs[i] = fmt.Errorf("record transition %s seq %d: %w", ws[i].UID, ws[i].Transition.Seq, ctx.Err())
			case IsTransient(err):
				errs[i] = fmt.Errorf("record %d transitions: %w", len(rows), err)
			default: // refused for good: find the write it refuses, write by write
				errs[i] = r.RecordTransition(ctx, ws[i])
			}
		}
		return errs
	}
	done := make(map[string]bool, len(recorded))
	for _, uid := range recorded {
		done[uid] = true
	}
	for _, i := range at {
		if w := ws[i]; !done[w.UID] {
			errs[i] = r.unmatchedTransition(ctx, w)
		}
	}
	return errs
}
