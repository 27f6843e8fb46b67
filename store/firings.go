package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// FiringOutcome is what became of one slot of a TaskSchedule (background_task_firings.outcome).
type FiringOutcome string

// The outcomes; the table's CHECK lists the same (TestFiringOutcomesMatchTheCheck).
const (
	// FiringCreated: the slot's BackgroundTask was created.
	FiringCreated FiringOutcome = "created"
	// FiringReplaced: created after stopping the active children (concurrencyPolicy Replace).
	FiringReplaced FiringOutcome = "replaced"
	// FiringSkipped: not run on purpose: the schedule was suspended, or concurrencyPolicy
	// Forbid with a run active.
	FiringSkipped FiringOutcome = "skipped"
	// FiringMissed: no operator fired it in time (catchUp and startingDeadlineSeconds).
	FiringMissed FiringOutcome = "missed"
)

// FiringOutcomes lists every outcome.
func FiringOutcomes() []FiringOutcome {
	return []FiringOutcome{FiringCreated, FiringReplaced, FiringSkipped, FiringMissed}
}

// Created reports whether the outcome created a child.
func (o FiringOutcome) Created() bool { return o == FiringCreated || o == FiringReplaced }

// Firing is one row of background_task_firings.
type Firing struct {
	ID          int64     `gorm:"column:id;primaryKey"`
	ScheduleUID string    `gorm:"column:schedule_uid"`
	Namespace   string    `gorm:"column:namespace"`
	Schedule    string    `gorm:"column:schedule"`
	Slot        time.Time `gorm:"column:slot"`
	// Manual: a run requested now (the run-now annotation); Slot is the request's time.
	Manual     bool          `gorm:"column:manual"`
	Outcome    FiringOutcome `gorm:"column:outcome"`
	Reason     string        `gorm:"column:reason"`
	TaskName   string        `gorm:"column:task_name"`
	RecordedAt time.Time     `gorm:"column:recorded_at;default:now()"`
	RecordedBy string        `gorm:"column:recorded_by"`
	// ChildUID is the UID of the child a created or replaced slot made; nil while the child
	// is still to be created (the row is written first), '' for rows older than the column.
	ChildUID *string `gorm:"column:child_uid"`
}

// Settled reports whether nothing is left to do for the row: it created nothing, or its
// child was created.
func (f Firing) Settled() bool { return !f.Outcome.Created() || f.ChildUID != nil }

// TableName implements gorm's tabler.
func (Firing) TableName() string { return "background_task_firings" }

// RecordFirings inserts the firings in order, each only if its slot is not recorded yet, and
// stops at the first slot that is: that slot's first row stands (another operator's, or one
// written before a crash), and whoever wrote it is the one to act on it, so the caller must
// look again before acting on later slots. It returns the rows it inserted (with their IDs),
// all of them exactly when lost is false.
func (r *Repository) RecordFirings(ctx context.Context, firings []Firing) (won []Firing, lost bool, err error) {
	if len(firings) == 0 {
		return nil, false, nil
	}
	err = r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		won, lost = nil, false
		for _, f := range firings {
			var id int64
			res := tx.Raw(`
INSERT INTO background_task_firings (schedule_uid, namespace, schedule, slot, manual, outcome, reason, task_name, recorded_by, child_uid)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (schedule_uid, slot, manual) DO NOTHING
RETURNING id`, f.ScheduleUID, f.Namespace, f.Schedule, f.Slot, f.Manual, f.Outcome, f.Reason, f.TaskName, f.RecordedBy, f.ChildUID).Scan(&id)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				lost = true
				return nil
			}
			f.ID = id
			won = append(won, f)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("record %d firing(s) of schedule %s/%s: %w", len(firings), firings[0].Namespace, firings[0].Schedule, err)
	}
	return won, lost, nil
}

// SettleChild records the UID of the child the firing id created. It changes nothing when the
// row was settled already.
func (r *Repository) SettleChild(ctx context.Context, id int64, childUID string) error {
	err := r.db.WithContext(ctx).Exec(`UPDATE background_task_firings SET child_uid = ?
WHERE id = ? AND child_uid IS NULL AND outcome IN ('created', 'replaced')`, childUID, id).Error
	if err != nil {
		return fmt.Errorf("record the child %s of firing %d: %w", childUID, id, err)
	}
	return nil
}

// SettleRefused records that the child of the firing id could not be created (the API server
// refused it for good): the slot is missed, with reason.
func (r *Repository) SettleRefused(ctx context.Context, id int64, reason string) error {
	err := r.db.WithContext(ctx).Exec(`UPDATE background_task_firings SET outcome = 'missed', task_name = '', reason = ?
WHERE id = ? AND child_uid IS NULL AND outcome IN ('created', 'replaced')`, reason, id).Error
	if err != nil {
		return fmt.Errorf("record firing %d missed: %w", id, err)
	}
	return nil
}

// ScheduleBook is what PostgreSQL holds of one schedule: when its expression took effect, its
// newest slot, and the slots whose child is still to be created.
type ScheduleBook struct {
	// Revision is nil until the schedule was first looked at.
	Revision *ScheduleRevision
	// Last is the newest recorded slot, manual runs aside (nil: none yet).
	Last *Firing
	// Unsettled are the created or replaced rows whose child is not recorded yet, manual
	// runs included, oldest first.
	Unsettled []Firing
}

// ScheduleBook reads the book of the schedule scheduleUID.
func (r *Repository) ScheduleBook(ctx context.Context, scheduleUID string) (ScheduleBook, error) {
	var book ScheduleBook
	var revs []ScheduleRevision
	if err := r.db.WithContext(ctx).Where("schedule_uid = ?", scheduleUID).Limit(1).Find(&revs).Error; err != nil {
		return book, fmt.Errorf("read the revision of schedule %s: %w", scheduleUID, err)
	}
	if len(revs) == 1 {
		book.Revision = &revs[0]
	}
	var rows []Firing
	if err := r.db.WithContext(ctx).Raw(`
(SELECT * FROM background_task_firings WHERE schedule_uid = ? AND NOT manual ORDER BY slot DESC LIMIT 1)
UNION ALL
(SELECT * FROM background_task_firings WHERE schedule_uid = ? AND child_uid IS NULL AND outcome IN ('created', 'replaced')
 ORDER BY slot)`, scheduleUID, scheduleUID).Scan(&rows).Error; err != nil {
		return book, fmt.Errorf("read the firings of schedule %s: %w", scheduleUID, err)
	}
	if len(rows) > 0 && !rows[0].Manual {
		last := rows[0]
		book.Last = &last
		if last.Settled() {
			rows = rows[1:]
		}
	}
	for _, f := range rows {
		if !f.Settled() && (len(book.Unsettled) == 0 || book.Unsettled[len(book.Unsettled)-1].ID != f.ID) {
			book.Unsettled = append(book.Unsettled, f)
		}
	}
	slices.SortFunc(book.Unsettled, func(a, b Firing) int { return a.Slot.Compare(b.Slot) })
	return book, nil
}

// ScheduleRevision is one row of background_task_schedule_revisions: since when the
// schedule's expression and time zone are what they are.
type ScheduleRevision struct {
	ScheduleUID   string    `gorm:"column:schedule_uid;primaryKey"`
	Namespace     string    `gorm:"column:namespace"`
	Schedule      string    `gorm:"column:schedule"`
	Generation    int64     `gorm:"column:generation"`
	Expression    string    `gorm:"column:expression"`
	TimeZone      string    `gorm:"column:time_zone"`
	EffectiveFrom time.Time `gorm:"column:effective_from"`
	RecordedAt    time.Time `gorm:"column:recorded_at;default:now()"`
}

// TableName implements gorm's tabler.
func (ScheduleRevision) TableName() string { return "background_task_schedule_revisions" }

// Revise records rev unless a revision of the same or a newer generation is recorded, and
// returns the recorded one: a writer whose view of the schedule is older than the recorded
// one learns it from the generation it gets back.
func (r *Repository) Revise(ctx context.Context, rev ScheduleRevision) (ScheduleRevision, error) {
	var got []ScheduleRevision
	err := r.db.WithContext(ctx).Raw(`
INSERT INTO background_task_schedule_revisions AS r (schedule_uid, namespace, schedule, generation, expression, time_zone, effective_from)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (schedule_uid) DO UPDATE SET generation = EXCLUDED.generation, expression = EXCLUDED.expression,
    time_zone = EXCLUDED.time_zone, effective_from = EXCLUDED.effective_from, recorded_at = now()
WHERE r.generation < EXCLUDED.generation
RETURNING *`, rev.ScheduleUID, rev.Namespace, rev.Schedule, rev.Generation, rev.Expression, rev.TimeZone, rev.EffectiveFrom).
		Scan(&got).Error
	if err == nil && len(got) == 0 {
		err = r.db.WithContext(ctx).Where("schedule_uid = ?", rev.ScheduleUID).Find(&got).Error
	}
	if err != nil || len(got) == 0 {
		return ScheduleRevision{}, fmt.Errorf("record revision %d of schedule %s/%s: %w", rev.Generation, rev.Namespace, rev.Schedule,
			cmp.Or(err, ErrNotFound))
	}
	return got[0], nil
}

// TaskCreatedSince reports the UID of a task named namespace/name whose row was created at or
// after since, deleted or not: a slot's child that ran and was deleted before its firing row
// recorded it still left its row.
func (r *Repository) TaskCreatedSince(ctx context.Context, namespace, name string, since time.Time) (string, bool, error) {
	var uids []string
	err := r.db.WithContext(ctx).Raw(`SELECT uid FROM background_tasks WHERE namespace = ? AND name = ? AND created_at >= ?
ORDER BY created_at DESC LIMIT 1`, namespace, name, since).Scan(&uids).Error
	if err != nil {
		return "", false, fmt.Errorf("look for task %s/%s: %w", namespace, name, err)
	}
	if len(uids) == 0 {
		return "", false, nil
	}
	return uids[0], true, nil
}

// Firings lists the newest firings of the schedule namespace/name (every incarnation of that
// name), newest first, at most limit.
func (r *Repository) Firings(ctx context.Context, namespace, schedule string, limit int) ([]Firing, error) {
	var out []Firing
	if err := r.db.WithContext(ctx).Where("namespace = ? AND schedule = ?", namespace, schedule).
		Order("slot DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("firings of schedule %s/%s: %w", namespace, schedule, err)
	}
	return out, nil
}
