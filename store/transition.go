package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

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
	recorded, err := r.recordBatch(ctx, []batchedTransition{transitionRow(w)})
	if err != nil {
		return fmt.Errorf("record transition %s seq %d %s->%s: %w", w.UID, tr.Seq, tr.From, tr.To, err)
	}
	if len(recorded) == 1 {
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
