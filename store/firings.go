package store

import (
	"context"
	"errors"
	"fmt"
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
}

// TableName implements gorm's tabler.
func (Firing) TableName() string { return "background_task_firings" }

// RecordFirings inserts the firings that are not recorded yet; a slot already recorded (by
// another operator, or before a crash) keeps its first row. It returns the rows that were new.
func (r *Repository) RecordFirings(ctx context.Context, firings []Firing) ([]Firing, error) {
	if len(firings) == 0 {
		return nil, nil
	}
	var inserted []Firing
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, f := range firings {
			res := tx.Exec(`
INSERT INTO background_task_firings (schedule_uid, namespace, schedule, slot, manual, outcome, reason, task_name, recorded_by)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (schedule_uid, slot, manual) DO NOTHING`, f.ScheduleUID, f.Namespace, f.Schedule, f.Slot, f.Manual, f.Outcome, f.Reason, f.TaskName, f.RecordedBy)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 1 {
				inserted = append(inserted, f)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d firing(s) of schedule %s/%s: %w", len(firings), firings[0].Namespace, firings[0].Schedule, err)
	}
	return inserted, nil
}

// LastFiring is the newest recorded slot of a schedule, manual runs aside (ok false: none yet).
func (r *Repository) LastFiring(ctx context.Context, scheduleUID string) (Firing, bool, error) {
	var f Firing
	err := r.db.WithContext(ctx).Where("schedule_uid = ? AND NOT manual", scheduleUID).Order("slot DESC").Take(&f).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Firing{}, false, nil
	}
	if err != nil {
		return Firing{}, false, fmt.Errorf("last firing of schedule %s: %w", scheduleUID, err)
	}
	return f, true, nil
}

// HasFiring reports whether the schedule's slot (or manual run at that time) is recorded.
func (r *Repository) HasFiring(ctx context.Context, scheduleUID string, slot time.Time, manual bool) (bool, error) {
	var n int64
	if err := r.db.WithContext(ctx).Model(&Firing{}).Where("schedule_uid = ? AND slot = ? AND manual = ?", scheduleUID, slot, manual).
		Count(&n).Error; err != nil {
		return false, fmt.Errorf("firing of schedule %s at %s: %w", scheduleUID, slot.UTC().Format(time.RFC3339), err)
	}
	return n > 0, nil
}

// LastCreated is the newest slot of a schedule that created a child, manual runs aside (ok
// false: none yet).
func (r *Repository) LastCreated(ctx context.Context, scheduleUID string) (Firing, bool, error) {
	var f Firing
	err := r.db.WithContext(ctx).Where("schedule_uid = ? AND NOT manual AND outcome IN ?", scheduleUID, []FiringOutcome{FiringCreated, FiringReplaced}).
		Order("slot DESC").Take(&f).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Firing{}, false, nil
	}
	if err != nil {
		return Firing{}, false, fmt.Errorf("last created firing of schedule %s: %w", scheduleUID, err)
	}
	return f, true, nil
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
