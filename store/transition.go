package store

import (
	"context"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// RecordTransitionSQL is the hot path: one statement, hence one implicit
// transaction and one round trip. The UPDATE only matches when the row is in
// the state the writer expects; the INSERT appends history only for a row the
// UPDATE matched, so the row and its history can never disagree. Concurrent
// writers serialise on the row lock and the loser re-checks the WHERE clause
// against the winner's row (READ COMMITTED), matching nothing. Named parameters
// are those RecordTransition passes; exported so the benchmark's PostgreSQL
// ceiling runs exactly this statement.
const RecordTransitionSQL = `
WITH v AS (
    SELECT CAST(@uid AS text) AS uid, CAST(@seq AS bigint) AS seq, CAST(@from AS text) AS from_status,
           CAST(@prev_attempt AS integer) AS prev_attempt, CAST(@to AS text) AS to_status,
           CAST(@attempt AS integer) AS attempt, CAST(@reason AS text) AS reason, CAST(@message AS text) AS message,
           CAST(@at AS timestamptz) AS at, CAST(@progress AS text) AS progress, CAST(@result AS jsonb) AS result,
           CAST(@start_time AS timestamptz) AS start_time, CAST(@clear_checkpoint AS boolean) AS clear_checkpoint
), upd AS (
    UPDATE background_tasks t SET
        status             = v.to_status,
        attempt            = v.attempt,
        last_seq           = v.seq,
        progress           = v.progress,
        message            = v.message,
        result             = CASE WHEN v.to_status = 'FINISHED' THEN v.result
                                  WHEN v.attempt <> t.attempt THEN NULL
                                  ELSE t.result END,
        start_time         = COALESCE(v.start_time, t.start_time),
        last_run_time      = CASE WHEN v.to_status = 'RUNNING' THEN v.at ELSE t.last_run_time END,
        end_time           = CASE WHEN v.to_status IN ('FINISHED', 'FAILED', 'STOPPED') THEN v.at END,
        checkpoint         = CASE WHEN v.clear_checkpoint THEN NULL ELSE t.checkpoint END,
        checkpoint_attempt = CASE WHEN v.clear_checkpoint THEN NULL ELSE t.checkpoint_attempt END,
        updated_at         = now()
    FROM v
    WHERE t.uid = v.uid
      AND t.status = v.from_status
      AND t.attempt = v.prev_attempt
      AND t.last_seq = v.seq - 1
      AND t.deleted_at IS NULL
    RETURNING t.uid
)
INSERT INTO background_task_transitions (task_uid, seq, from_status, to_status, attempt, reason, message, at)
SELECT upd.uid, v.seq, v.from_status, v.to_status, v.attempt, v.reason, v.message, v.at
FROM upd CROSS JOIN v`

// diagnoseTransitionSQL runs only when RecordTransitionSQL matched nothing:
// it tells a replay (history already has this seq) from a conflict.
const diagnoseTransitionSQL = `
SELECT t.status, t.attempt, t.last_seq, t.deleted_at IS NOT NULL AS deleted,
       h.from_status AS rec_from, h.to_status AS rec_to, h.attempt AS rec_attempt
FROM background_tasks t
LEFT JOIN background_task_transitions h ON h.task_uid = t.uid AND h.seq = ?
WHERE t.uid = ?`

type transitionDiagnosis struct {
	Status     Status
	Attempt    int
	LastSeq    int64
	Deleted    bool
	RecFrom    *Status
	RecTo      *Status
	RecAttempt *int
}

// RecordTransition implements Repository: one round trip when the transition
// applies, two when it does not (replay or conflict).
func (r *GormRepository) RecordTransition(ctx context.Context, tr Transition) error {
	if err := tr.validate(); err != nil {
		return err
	}
	var result any // NULL unless finishing with a result
	if tr.To == StatusFinished && len(tr.Result) > 0 {
		result = string(tr.Result)
	}
	var startTime any
	if tr.StartTime != nil {
		startTime = *tr.StartTime
	}
	res := r.db.WithContext(ctx).Exec(RecordTransitionSQL, map[string]any{
		"uid":              tr.TaskUID,
		"seq":              tr.Seq,
		"from":             string(tr.From),
		"prev_attempt":     tr.PrevAttempt,
		"to":               string(tr.To),
		"attempt":          tr.Attempt,
		"reason":           tr.Reason,
		"message":          truncate(tr.Message, MaxMessageLen),
		"at":               tr.At,
		"progress":         truncate(tr.Progress, MaxProgressLen),
		"result":           result,
		"start_time":       startTime,
		"clear_checkpoint": tr.ClearCheckpoint,
	})
	if res.Error != nil {
		return fmt.Errorf("record transition %s seq %d %s->%s: %w", tr.TaskUID, tr.Seq, tr.From, tr.To, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	return r.diagnoseTransition(ctx, tr)
}

// diagnoseTransition decides between an idempotent replay (nil) and a stale
// or conflicting transition (ErrStaleTransition / ErrNotFound).
func (r *GormRepository) diagnoseTransition(ctx context.Context, tr Transition) error {
	var d transitionDiagnosis
	res := r.db.WithContext(ctx).Raw(diagnoseTransitionSQL, tr.Seq, tr.TaskUID).Scan(&d)
	if res.Error != nil {
		return fmt.Errorf("record transition %s seq %d: check existing state: %w", tr.TaskUID, tr.Seq, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("record transition %s seq %d: %w", tr.TaskUID, tr.Seq, ErrNotFound)
	}
	if d.RecTo != nil {
		if *d.RecTo == tr.To && d.RecFrom != nil && *d.RecFrom == tr.From && d.RecAttempt != nil && *d.RecAttempt == tr.Attempt {
			return nil // already recorded: replay after a lost reply or a retry
		}
		return fmt.Errorf("record transition %s seq %d %s->%s (attempt %d): seq already recorded as %s->%s (attempt %d): %w",
			tr.TaskUID, tr.Seq, tr.From, tr.To, tr.Attempt, deref(d.RecFrom), *d.RecTo, deref(d.RecAttempt), ErrStaleTransition)
	}
	return fmt.Errorf("record transition %s seq %d %s->%s (prev attempt %d): row has status %s attempt %d last_seq %d deleted %t: %w",
		tr.TaskUID, tr.Seq, tr.From, tr.To, tr.PrevAttempt, d.Status, d.Attempt, d.LastSeq, d.Deleted, ErrStaleTransition)
}

// validate rejects malformed transitions before any round trip.
func (tr Transition) validate() error {
	var problem string
	switch {
	case tr.TaskUID == "":
		problem = "empty task uid"
	case tr.Seq < 2:
		problem = fmt.Sprintf("seq %d: seq 1 is written by CreateTask", tr.Seq)
	case !tr.From.Valid():
		problem = fmt.Sprintf("from status %q", tr.From)
	case !tr.To.Valid():
		problem = fmt.Sprintf("to status %q", tr.To)
	case tr.PrevAttempt < 0 || tr.Attempt < 0:
		problem = "negative attempt"
	case tr.Reason == "":
		problem = "empty reason"
	case tr.At.IsZero():
		problem = "zero At"
	}
	if problem != "" {
		return fmt.Errorf("record transition %s: %s: %w", tr.TaskUID, problem, ErrInvalidArgument)
	}
	if tr.To == StatusFinished && len(tr.Result) > 0 {
		if len(tr.Result) > MaxResultSize {
			return fmt.Errorf("record transition %s: result is %d bytes, max %d: %w",
				tr.TaskUID, len(tr.Result), MaxResultSize, ErrResultTooLarge)
		}
		if !json.Valid(tr.Result) {
			return fmt.Errorf("record transition %s: result is not valid JSON: %w", tr.TaskUID, ErrInvalidArgument)
		}
	}
	return nil
}

// truncate shortens s to at most n characters without splitting a rune.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
