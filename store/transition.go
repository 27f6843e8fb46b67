package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// recordTransitionSQL is the hot path: one statement, hence one implicit transaction and one
// round trip. It holds no lifecycle policy: every column value is computed in Go by
// lifecycle.Apply and passed in. The UPDATE only matches when the row is where the writer
// believes it is (status, attempt, last_seq) and still belongs to the writer's fencing token;
// the INSERT appends history only for a row the UPDATE matched, so the row and its history
// never disagree. Concurrent writers serialise on the row lock and the loser re-checks the
// WHERE clause against the winner's row (READ COMMITTED), matching nothing.
const recordTransitionSQL = `
WITH upd AS (
    UPDATE background_tasks t SET
        status                      = CAST(@to AS text),
        attempt                     = CAST(@attempt AS integer),
        reason                      = CAST(@reason AS text),
        message                     = CAST(@message AS text),
        last_seq                    = CAST(@seq AS bigint),
        start_time                  = CAST(@start_time AS timestamptz),
        end_time                    = CAST(@end_time AS timestamptz),
        last_run_time               = CAST(@last_run_time AS timestamptz),
        retry_at                    = CAST(@retry_at AS timestamptz),
        retries                     = CAST(@retries AS integer),
        observed_restart_generation = CAST(@restart_generation AS bigint),
        transitioned_at             = CAST(@at AS timestamptz),
        result                      = CAST(@result AS jsonb),
        progress                    = COALESCE(CAST(@progress AS text), t.progress),
        run_span                    = COALESCE(CAST(@run_span AS text), t.run_span),
        checkpoint                  = CASE WHEN CAST(@keep_checkpoint AS boolean) THEN t.checkpoint END,
        checkpoint_attempt          = CASE WHEN CAST(@keep_checkpoint AS boolean) THEN t.checkpoint_attempt END,
        queue_state                 = CASE WHEN CAST(@leaves_queue AS boolean) THEN '' ELSE t.queue_state END,
        updated_at                  = now()
    WHERE t.uid = CAST(@uid AS text)
      AND t.last_seq = CAST(@prev_seq AS bigint)
      AND t.status = CAST(@from AS text)
      AND t.attempt = CAST(@prev_attempt AS integer)
      AND t.owner_epoch = CAST(@epoch AS bigint)
      AND t.deleted_at IS NULL
    RETURNING t.uid
)
INSERT INTO background_task_transitions
    (task_uid, seq, from_status, to_status, attempt, reason, message, at, owner_epoch, restart_generation, retry_at)
SELECT uid, CAST(@seq AS bigint), CAST(@from AS text), CAST(@to AS text), CAST(@attempt AS integer),
       CAST(@reason AS text), CAST(@message AS text), CAST(@at AS timestamptz), CAST(@epoch AS bigint),
       CAST(@restart_generation AS bigint), CAST(@retry_at AS timestamptz)
FROM upd`

// diagnoseSQL runs only when a guarded write matched nothing: it tells a replay (our own
// transition is already recorded), a fence (another owner) and a deletion apart.
const diagnoseSQL = `
SELECT t.status, t.attempt, t.last_seq, t.owner, t.owner_epoch, t.deleted_at IS NOT NULL AS deleted,
       h.to_status AS rec_to, h.attempt AS rec_attempt, h.owner_epoch AS rec_epoch
FROM background_tasks t
LEFT JOIN background_task_transitions h ON h.task_uid = t.uid AND h.seq = ?
WHERE t.uid = ?`

type diagnosis struct {
	Status     lifecycle.Status
	Attempt    int
	LastSeq    int64
	Owner      *string
	OwnerEpoch *int64
	Deleted    bool
	RecTo      *lifecycle.Status
	RecAttempt *int
	RecEpoch   *int64
}

// TransitionWrite is one transition as its owner records it.
type TransitionWrite struct {
	UID string
	// Owner is the writer; the row must belong to its epoch.
	Owner Owner
	// Prev is the record the writer believes the row holds (the guard).
	Prev lifecycle.Record
	// Transition comes from lifecycle.Next(Prev, event).
	Transition lifecycle.Transition
	// Result is stored with a Finished transition (nil stores NULL); it must have been
	// prepared with pgtext.JSON and fit lifecycle.MaxPayloadBytes.
	Result json.RawMessage
	// Progress replaces the row's progress when non-nil.
	Progress *string
	// Span, a W3C traceparent, replaces the row's run_span when not "".
	Span string
}

// RecordTransition applies w.Transition to the row and appends it to the history, atomically,
// if and only if the row is in state w.Prev and owned by w.Owner. Replaying a transition this
// owner already recorded returns nil without writing. Otherwise the error wraps ErrFenced
// (another owner), ErrDeleted, ErrNotFound or ErrConflict; nothing is ever overwritten. A
// constraint violation is returned as it is (permanent: see IsTransient).
func (r *Repository) RecordTransition(ctx context.Context, w TransitionWrite) error {
	tr := w.Transition
	if w.UID == "" || tr.Seq != w.Prev.Seq+1 || tr.From != w.Prev.Status || w.Owner.Epoch == 0 || tr.At.IsZero() {
		return fmt.Errorf("record transition %s seq %d: malformed (prev seq %d, from %s, epoch %d): %w",
			w.UID, tr.Seq, w.Prev.Seq, tr.From, w.Owner.Epoch, ErrInvalidArgument)
	}
	res := r.db.WithContext(ctx).Exec(recordTransitionSQL, transitionArgs(w))
	if res.Error != nil {
		return fmt.Errorf("record transition %s seq %d %s->%s: %w", w.UID, tr.Seq, tr.From, tr.To, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	return r.unmatchedTransition(ctx, w)
}

// unmatchedTransition explains why w's guarded write matched no row: nil when it is this
// owner's own transition, recorded by an earlier try whose reply was lost.
func (r *Repository) unmatchedTransition(ctx context.Context, w TransitionWrite) error {
	tr := w.Transition
	return r.diagnose(ctx, w.UID, w.Owner, fmt.Sprintf("record transition seq %d %s->%s", tr.Seq, tr.From, tr.To),
		func(d diagnosis) bool {
			return d.RecTo != nil && *d.RecTo == tr.To && deref(d.RecAttempt) == tr.Attempt && deref(d.RecEpoch) == w.Owner.Epoch
		}, tr.Seq)
}

// transitionArgs are the named parameters of recordTransitionSQL for w.
func transitionArgs(w TransitionWrite) map[string]any {
	b := transitionRow(w)
	var result, progress, span any
	if b.Result != nil {
		result = *b.Result
	}
	if b.Progress != nil {
		progress = *b.Progress
	}
	if b.RunSpan != nil {
		span = *b.RunSpan
	}
	return map[string]any{
		"run_span":           span,
		"uid":                b.UID,
		"epoch":              b.Epoch,
		"prev_seq":           b.PrevSeq,
		"from":               b.From,
		"prev_attempt":       b.PrevAttempt,
		"seq":                b.Seq,
		"to":                 b.To,
		"attempt":            b.Attempt,
		"reason":             b.Reason,
		"message":            b.Message,
		"at":                 b.At,
		"start_time":         timeArg(b.StartTime),
		"end_time":           timeArg(b.EndTime),
		"last_run_time":      timeArg(b.LastRunTime),
		"retry_at":           timeArg(b.RetryAt),
		"retries":            b.Retries,
		"restart_generation": b.RestartGeneration,
		"result":             result,
		"progress":           progress,
		"keep_checkpoint":    b.KeepCheckpoint,
		"leaves_queue":       b.LeavesQueue,
	}
}

// timeArg is SQL NULL for nil.
func timeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

// LeavesQueue reports whether a transition gives the task's place in its queue back: its run
// paused or ended. A start (Pending -> Running), a run moving on (Running -> Running) and every
// step to Pending keep it: Pending -> Pending is a run queued in the runner, Running -> Pending
// a resumed run waiting for a runner slot, Paused -> Pending a resume waiting for one; each
// still runs next (a retry's Failed -> Pending comes after the Failed that gave it back).
func LeavesQueue(_, to lifecycle.Status) bool {
	switch to {
	case lifecycle.Running, lifecycle.Pending:
		return false
	case lifecycle.Paused, lifecycle.Finished, lifecycle.Failed, lifecycle.Stopped:
	}
	return true
}

// diagnose explains why a guarded write of owner matched no row: nil when replayed(d) says
// the write is already there, else ErrNotFound, ErrDeleted, ErrFenced or ErrConflict.
func (r *Repository) diagnose(ctx context.Context, uid string, owner Owner, what string, replayed func(diagnosis) bool, seq int64) error {
	var d diagnosis
	res := r.db.WithContext(ctx).Raw(diagnoseSQL, seq, uid).Scan(&d)
	switch {
	case res.Error != nil:
		return fmt.Errorf("%s of %s: read the row: %w", what, uid, res.Error)
	case res.RowsAffected == 0:
		return fmt.Errorf("%s of %s: %w", what, uid, ErrNotFound)
	case replayed != nil && replayed(d):
		return nil
	case d.Deleted:
		return fmt.Errorf("%s of %s: %w", what, uid, ErrDeleted)
	case d.OwnerEpoch == nil || *d.OwnerEpoch != owner.Epoch:
		holder := Owner{Name: deref(d.Owner), Epoch: deref(d.OwnerEpoch)}
		return fmt.Errorf("%s (epoch %d): %w", what, owner.Epoch, &OwnedError{UID: uid, Owner: holder})
	}
	return fmt.Errorf("%s of %s: the row has status %s, attempt %d, last_seq %d: %w", what, uid, d.Status, d.Attempt, d.LastSeq, ErrConflict)
}

// History returns the transitions of a task ordered by seq, including for soft-deleted tasks.
// ErrNotFound when there are none.
func (r *Repository) History(ctx context.Context, uid string) ([]TransitionRecord, error) {
	var recs []TransitionRecord
	if err := r.db.WithContext(ctx).Where("task_uid = ?", uid).Order("seq").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("history of task %s: %w", uid, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("history of task %s: %w", uid, ErrNotFound)
	}
	return recs, nil
}
