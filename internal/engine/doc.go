// Package engine is taskpilot's in-pod task engine, the part of the runner that task authors
// never see: it runs each task's hooks in a goroutine of its own, with bounded FIFO slots and a
// memory budget, cooperative pause points, stop grace, timeouts that do not count paused time,
// panic recovery, and hand-over to another replica. The operator drives it (StartTask,
// PauseTask, ResumeTask, StopTask, HandOver) and learns of every state change through a Sink
// and of every checkpoint through a CheckpointSaver, which keeps it free of Kubernetes and of
// the database, and testable alone. Task types come from a runner.Registry.
//
// docs/runner.md describes its rules in prose, with the state diagram.
package engine
