package store

import (
	"encoding/json"
	"time"

	"gorm.io/gorm"
)

// Size limits mirrored by CHECK constraints in the schema. The store checks
// them before a round trip so callers get a typed error, and truncates the
// free-text fields instead of failing a transition over a long message.
const (
	MaxProgressLen    = 64       // characters
	MaxMessageLen     = 4096     // characters
	MaxResultSize     = 64 << 10 // bytes of JSON
	MaxCheckpointSize = 64 << 10 // bytes of JSON
)

// Task is one row of background_tasks: the current state of a task. It is a
// plain record; nothing serialises it as a whole.
type Task struct {
	ID                int64           `gorm:"column:id;primaryKey"`
	UID               string          `gorm:"column:uid"` // Kubernetes UID; stable key
	Namespace         string          `gorm:"column:namespace"`
	Name              string          `gorm:"column:name"`
	TaskName          string          `gorm:"column:task_name"` // registered task type
	Status            Status          `gorm:"column:status"`
	DesiredState      DesiredState    `gorm:"column:desired_state"`
	Attempt           int             `gorm:"column:attempt"`
	Progress          string          `gorm:"column:progress"`
	Message           string          `gorm:"column:message"`
	Result            json.RawMessage `gorm:"column:result"`
	Checkpoint        json.RawMessage `gorm:"column:checkpoint"`
	CheckpointAttempt *int            `gorm:"column:checkpoint_attempt"`
	LastSeq           int64           `gorm:"column:last_seq"`
	StartTime         *time.Time      `gorm:"column:start_time"`
	EndTime           *time.Time      `gorm:"column:end_time"`
	LastRunTime       *time.Time      `gorm:"column:last_run_time"`
	CreatedAt         time.Time       `gorm:"column:created_at"`
	UpdatedAt         time.Time       `gorm:"column:updated_at"`
	DeletedAt         gorm.DeletedAt  `gorm:"column:deleted_at"`
}

// TableName is part of the public SQL contract.
func (Task) TableName() string { return "background_tasks" }

// TransitionRecord is one row of background_task_transitions.
type TransitionRecord struct {
	ID         int64     `gorm:"column:id;primaryKey"`
	TaskUID    string    `gorm:"column:task_uid"`
	Seq        int64     `gorm:"column:seq"`
	FromStatus *Status   `gorm:"column:from_status"` // nil only for seq 1
	ToStatus   Status    `gorm:"column:to_status"`
	Attempt    int       `gorm:"column:attempt"`
	Reason     string    `gorm:"column:reason"`
	Message    string    `gorm:"column:message"`
	At         time.Time `gorm:"column:at"`
}

// TableName is part of the public SQL contract.
func (TransitionRecord) TableName() string { return "background_task_transitions" }
