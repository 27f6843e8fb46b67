package store

import (
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// Task is one row of background_tasks: the current state of a task. It is a plain record;
// nothing serialises it as a whole.
type Task struct {
	ID           int64             `gorm:"column:id;primaryKey"`
	UID          string            `gorm:"column:uid"` // Kubernetes UID; stable key
	Namespace    string            `gorm:"column:namespace"`
	Name         string            `gorm:"column:name"`
	TaskName     string            `gorm:"column:task_name"` // registered task type
	Status       lifecycle.Status  `gorm:"column:status"`
	DesiredState lifecycle.Desired `gorm:"column:desired_state"`
	Attempt      int               `gorm:"column:attempt"`
	Reason       string            `gorm:"column:reason"`
	Progress     string            `gorm:"column:progress"`
	Message      string            `gorm:"column:message"`
	Result       json.RawMessage   `gorm:"column:result"`
	Checkpoint   json.RawMessage   `gorm:"column:checkpoint"`
	// CheckpointAttempt is the attempt Checkpoint belongs to (nil exactly when there is none).
	CheckpointAttempt *int  `gorm:"column:checkpoint_attempt"`
	LastSeq           int64 `gorm:"column:last_seq"`
	// RunSpan is the W3C traceparent of the latest traced execution ("" when none).
	RunSpan        string     `gorm:"column:run_span"`
	StartTime      *time.Time `gorm:"column:start_time"`
	EndTime        *time.Time `gorm:"column:end_time"`
	LastRunTime    *time.Time `gorm:"column:last_run_time"`
	RetryAt        *time.Time `gorm:"column:retry_at"`
	TransitionedAt *time.Time `gorm:"column:transitioned_at"`
	Retries        int        `gorm:"column:retries"`
	// ObservedRestartGeneration is the highest spec.restartGeneration honoured.
	ObservedRestartGeneration int64 `gorm:"column:observed_restart_generation"`
	// Queue, Priority and FairValue are the task's queue, priority and tenant as it last asked
	// its queue for a place; QueueState is "", QueueWaiting or QueueAdmitted (migration 00010).
	Queue             string         `gorm:"column:queue"`
	Priority          int            `gorm:"column:priority"`
	FairValue         string         `gorm:"column:fair_value"`
	QueueState        string         `gorm:"column:queue_state"`
	QueueWaitingSince *time.Time     `gorm:"column:queue_waiting_since"`
	QueueAdmittedAt   *time.Time     `gorm:"column:queue_admitted_at"`
	Owner             *string        `gorm:"column:owner"`
	OwnerEpoch        *int64         `gorm:"column:owner_epoch"`
	CreatedAt         time.Time      `gorm:"column:created_at"`
	UpdatedAt         time.Time      `gorm:"column:updated_at"`
	DeletedAt         gorm.DeletedAt `gorm:"column:deleted_at"`
}

// TableName is part of the public SQL contract.
func (Task) TableName() string { return "background_tasks" }

// Record is the lifecycle part of the row, what decisions are made from.
func (t *Task) Record() lifecycle.Record {
	return lifecycle.Record{
		Status:            t.Status,
		Attempt:           t.Attempt,
		Reason:            t.Reason,
		Message:           t.Message,
		Seq:               t.LastSeq,
		StartTime:         deref(t.StartTime),
		EndTime:           deref(t.EndTime),
		LastRunTime:       deref(t.LastRunTime),
		RetryAt:           deref(t.RetryAt),
		Retries:           t.Retries,
		RestartGeneration: t.ObservedRestartGeneration,
		TransitionedAt:    deref(t.TransitionedAt),
	}
}

// Owned reports who runs the task: the owner's name and fencing token (ok false when nobody
// has claimed it).
func (t *Task) Owned() (Owner, bool) {
	if t.Owner == nil || t.OwnerEpoch == nil {
		return Owner{}, false
	}
	return Owner{Name: *t.Owner, Epoch: *t.OwnerEpoch}, true
}

// CurrentCheckpoint is the checkpoint of the current attempt, if any: a run of this attempt
// resumes from it.
func (t *Task) CurrentCheckpoint() json.RawMessage {
	if t.CheckpointAttempt == nil || *t.CheckpointAttempt != t.Attempt {
		return nil
	}
	return t.Checkpoint
}

// TransitionRecord is one row of background_task_transitions.
type TransitionRecord struct {
	ID                int64             `gorm:"column:id;primaryKey"`
	TaskUID           string            `gorm:"column:task_uid"`
	Seq               int64             `gorm:"column:seq"`
	FromStatus        *lifecycle.Status `gorm:"column:from_status"` // nil only for seq 1
	ToStatus          lifecycle.Status  `gorm:"column:to_status"`
	Attempt           int               `gorm:"column:attempt"`
	Reason            string            `gorm:"column:reason"`
	Message           string            `gorm:"column:message"`
	At                time.Time         `gorm:"column:at"`
	OwnerEpoch        *int64            `gorm:"column:owner_epoch"` // the writer's fencing token
	RestartGeneration int64             `gorm:"column:restart_generation"`
	RetryAt           *time.Time        `gorm:"column:retry_at"`
}

// TableName is part of the public SQL contract.
func (TransitionRecord) TableName() string { return "background_task_transitions" }

// Lifecycle is the history row as package lifecycle sees it (for Replay).
func (h *TransitionRecord) Lifecycle() lifecycle.Transition {
	return lifecycle.Transition{
		Seq: h.Seq, From: deref(h.FromStatus), To: h.ToStatus, Attempt: h.Attempt, Reason: h.Reason,
		Message: h.Message, At: h.At, RetryAt: deref(h.RetryAt), RestartGeneration: h.RestartGeneration,
	}
}

// Owner is an operator process that runs tasks: its name (its membership Lease) and its
// fencing token, a number from the taskpilot_owner_epoch sequence that grows with every
// process start.
type Owner struct {
	Name  string
	Epoch int64
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
