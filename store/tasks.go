package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// createTaskSQL inserts the row, owned by its creator, and its seq-1 history record in one
// statement (one implicit transaction, one round trip). ON CONFLICT makes it idempotent: when
// the uid exists, nothing is written and no row is returned.
const createTaskSQL = `
WITH ins AS (
    INSERT INTO background_tasks
        (uid, namespace, name, task_name, status, desired_state, attempt, reason, last_seq,
         observed_restart_generation, owner, owner_epoch, created_at, updated_at, transitioned_at)
    VALUES
        (CAST(@uid AS text), CAST(@namespace AS text), CAST(@name AS text), CAST(@task_name AS text),
         CAST(@status AS text), CAST(@desired_state AS text), 0, CAST(@reason AS text), 1,
         CAST(@restart_generation AS bigint), CAST(@owner AS text), CAST(@epoch AS bigint), CAST(@at AS timestamptz), now(),
         CAST(@at AS timestamptz))
    ON CONFLICT (uid) DO NOTHING
    RETURNING *
), hist AS (
    INSERT INTO background_task_transitions
        (task_uid, seq, from_status, to_status, attempt, reason, message, at, owner_epoch, restart_generation)
    SELECT uid, 1, NULL, status, 0, reason, '', created_at, owner_epoch, observed_restart_generation FROM ins
)
SELECT * FROM ins`

// NewTask describes a task seen for the first time.
type NewTask struct {
	UID, Namespace, Name, TaskName string
	Desired                        lifecycle.Desired
	// RestartGeneration is spec.restartGeneration at creation: a new task honours it.
	RestartGeneration int64
	// Owner creates, and so owns, the row.
	Owner Owner
	At    time.Time
}

// CreateTask inserts the row (PENDING, attempt 0, seq 1, reason Created, owned by nt.Owner)
// and history seq 1 in one statement. It is idempotent on the UID: when the row exists, it is
// returned unchanged with created false (whoever owns it). A soft-deleted row's UID is burnt:
// ErrAlreadyExists.
func (r *Repository) CreateTask(ctx context.Context, nt NewTask) (*Task, bool, error) {
	if nt.UID == "" || nt.TaskName == "" || nt.Owner.Epoch == 0 || !nt.Desired.Valid() {
		return nil, false, fmt.Errorf("create task %q: uid, task name, owner and desired state are required: %w", nt.UID, ErrInvalidArgument)
	}
	var inserted Task
	res := r.db.WithContext(ctx).Raw(createTaskSQL, createTaskArgs(nt)).Scan(&inserted)
	if res.Error != nil {
		return nil, false, fmt.Errorf("create task %s: %w", nt.UID, res.Error)
	}
	if res.RowsAffected == 1 {
		return &inserted, true, nil
	}
	var existing Task
	if err := r.db.WithContext(ctx).Unscoped().Where("uid = ?", nt.UID).Take(&existing).Error; err != nil {
		return nil, false, fmt.Errorf("create task %s: read the existing row: %w", nt.UID, notFound(err))
	}
	if existing.DeletedAt.Valid {
		return nil, false, fmt.Errorf("create task %s: the uid belongs to a deleted task: %w", nt.UID, ErrAlreadyExists)
	}
	return &existing, false, nil
}

// createTaskArgs are the named parameters of createTaskSQL for nt.
func createTaskArgs(nt NewTask) map[string]any {
	rec, _ := lifecycle.Create(nt.At, nt.RestartGeneration)
	return map[string]any{
		"uid": nt.UID, "namespace": nt.Namespace, "name": nt.Name, "task_name": nt.TaskName,
		"status": string(rec.Status), "reason": rec.Reason, "desired_state": string(nt.Desired),
		"restart_generation": rec.RestartGeneration, "owner": nt.Owner.Name, "epoch": nt.Owner.Epoch, "at": nt.At,
	}
}

// GetTask returns the row with this UID, soft-deleted or not, or ErrNotFound.
func (r *Repository) GetTask(ctx context.Context, uid string) (*Task, error) {
	var t Task
	if err := r.db.WithContext(ctx).Unscoped().Where("uid = ?", uid).Take(&t).Error; err != nil {
		return nil, fmt.Errorf("get task %s: %w", uid, notFound(err))
	}
	return &t, nil
}

// claimSQL moves a row to a new owner: one that nobody owns, that the caller already owns, or
// whose owner the caller knows is gone: its Kubernetes Lease expired or was released (the
// caller checked), and its membership row here too, checked in this statement by the
// database's clock, so an owner that can still renew either of them keeps its tasks. It is a
// compare-and-swap on owner_epoch, so of two claimers of the same dead owner exactly one wins.
const claimSQL = `
UPDATE background_tasks
SET owner = CAST(@owner AS text), owner_epoch = CAST(@epoch AS bigint), updated_at = now()
WHERE uid = CAST(@uid AS text) AND deleted_at IS NULL
  AND (owner_epoch IS NULL OR owner_epoch = CAST(@epoch AS bigint)
       OR (owner_epoch = CAST(@gone AS bigint) AND NOT EXISTS (
             SELECT FROM taskpilot_members m
             WHERE m.epoch = CAST(@gone AS bigint) AND m.released_at IS NULL AND m.expires_at > now())))
RETURNING *`

// Claim makes me the owner of the task, from nobody, from itself, or from gone (an owner the
// caller has established is no longer running, or 0 for none). When another owner holds the
// row the error is an *OwnedError (errors.Is ErrFenced).
func (r *Repository) Claim(ctx context.Context, uid string, me Owner, gone int64) (*Task, error) {
	var t Task
	res := r.db.WithContext(ctx).Raw(claimSQL, map[string]any{
		"uid": uid, "owner": me.Name, "epoch": me.Epoch, "gone": gone,
	}).Scan(&t)
	if res.Error != nil {
		return nil, fmt.Errorf("claim task %s: %w", uid, res.Error)
	}
	if res.RowsAffected == 1 {
		return &t, nil
	}
	return nil, r.diagnose(ctx, uid, me, "claim", nil, 0)
}

// claimFromSQL moves every listed row the gone owner holds to a new owner in one statement, on
// the same condition as claimSQL: the gone owner's membership row is not live by the database's
// clock.
const claimFromSQL = `
UPDATE background_tasks
SET owner = CAST(@owner AS text), owner_epoch = CAST(@epoch AS bigint), updated_at = now()
WHERE uid IN @uids AND deleted_at IS NULL AND owner_epoch = CAST(@gone AS bigint)
  AND NOT EXISTS (
        SELECT FROM taskpilot_members m
        WHERE m.epoch = CAST(@gone AS bigint) AND m.released_at IS NULL AND m.expires_at > now())
RETURNING *`

// ClaimFrom makes me the owner of those of uids that gone (an owner the caller has
// established is no longer running) holds, in one statement: a takeover of a thousand tasks is
// one round trip, not a thousand. It returns the rows it took (none while gone's membership row
// is live, or when another process took them first).
func (r *Repository) ClaimFrom(ctx context.Context, gone int64, me Owner, uids []string) ([]Task, error) {
	if len(uids) == 0 || gone == 0 {
		return nil, nil
	}
	var rows []Task
	if err := r.db.WithContext(ctx).Raw(claimFromSQL, map[string]any{
		"uids": uids, "owner": me.Name, "epoch": me.Epoch, "gone": gone,
	}).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("claim %d task(s) from epoch %d: %w", len(uids), gone, err)
	}
	return rows, nil
}

// OwnersOf lists the owners (epochs) of identity that hold live rows.
func (r *Repository) OwnersOf(ctx context.Context, identity string) ([]Owner, error) {
	var epochs []int64
	if err := r.db.WithContext(ctx).Raw(`SELECT DISTINCT owner_epoch FROM background_tasks
WHERE owner = ? AND owner_epoch IS NOT NULL AND deleted_at IS NULL`, identity).Scan(&epochs).Error; err != nil {
		return nil, fmt.Errorf("owners of %s: %w", identity, err)
	}
	out := make([]Owner, 0, len(epochs))
	for _, e := range epochs {
		out = append(out, Owner{Name: identity, Epoch: e})
	}
	return out, nil
}

// releaseSQL gives the row up: nobody owns it afterwards, so the next owner claims it at once
// instead of waiting for this owner's Lease to expire. Only the owner may release.
const releaseSQL = `
UPDATE background_tasks SET owner = NULL, owner_epoch = NULL, updated_at = now()
WHERE uid = ? AND owner_epoch = ? AND deleted_at IS NULL`

// Release gives up owner's claim on the task, for a handover: the run was stopped here without
// recording anything and every write of it is committed, so the next owner continues from the
// row. Fenced like every write: an owner that lost the task gets an *OwnedError.
func (r *Repository) Release(ctx context.Context, uid string, owner Owner) error {
	res := r.db.WithContext(ctx).Exec(releaseSQL, uid, owner.Epoch)
	if res.Error != nil {
		return fmt.Errorf("release task %s: %w", uid, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	return r.diagnose(ctx, uid, owner, "release", nil, 0)
}

// ListLive returns every non-deleted row without its payloads (result, checkpoint), ordered by
// id, for the sweep that compares rows with the live BackgroundTasks and adopts the tasks of
// gone owners: how tasks Running or Paused when their owner stopped are run again.
func (r *Repository) ListLive(ctx context.Context) ([]Task, error) {
	var tasks []Task
	if err := r.db.WithContext(ctx).Omit("result", "checkpoint").Order("id").Find(&tasks).Error; err != nil {
		return nil, fmt.Errorf("list live tasks: %w", err)
	}
	return tasks, nil
}

// MarkDeleted soft-deletes the row (deleted_at = now()), keeping it and its history for SQL
// users. It is not fenced: the BackgroundTask is gone, which is final whoever owns the row, and
// an owner's later writes then fail with ErrDeleted. Idempotent; an unknown UID is no error.
func (r *Repository) MarkDeleted(ctx context.Context, uid string) error {
	err := r.db.WithContext(ctx).Exec(
		`UPDATE background_tasks SET deleted_at = now(), updated_at = now() WHERE uid = ? AND deleted_at IS NULL`, uid).Error
	if err != nil {
		return fmt.Errorf("mark task %s deleted: %w", uid, err)
	}
	return nil
}

// NextEpoch takes a new fencing token from the taskpilot_owner_epoch sequence. Every operator
// process takes one when it starts running tasks; a larger one never belonged to an older
// process.
func (r *Repository) NextEpoch(ctx context.Context) (int64, error) {
	var epoch int64
	if err := r.db.WithContext(ctx).Raw(`SELECT nextval('taskpilot_owner_epoch')`).Scan(&epoch).Error; err != nil {
		return 0, fmt.Errorf("take an owner epoch: %w", err)
	}
	return epoch, nil
}

// notFound maps GORM's not-found error to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
