package engine

import (
	"encoding/json"

	"github.com/taskpilot/taskpilot/runner"
)

// The engine runs what package runner defines for task authors; these are its names for them.
type (
	// Task is a run's task with its result encoded (runner.Register encodes typed results).
	Task     = runner.Task[json.RawMessage]
	Key      = runner.Key
	Control  = runner.Control
	Outcome  = runner.Outcome
	Registry = runner.Registry
)

const (
	MaxCheckpointBytes = runner.MaxCheckpointBytes
	MaxResultBytes     = runner.MaxResultBytes
	MaxProgressLen     = runner.MaxProgressLen
	DefaultTaskMemory  = runner.DefaultTaskMemory
)
