// Package controllers wires taskpilot's controllers (Setup) and holds the BackgroundTask ones.
//
// Two controllers share a BackgroundTask's work, each with its own queue and workers (see
// docs/architecture.md):
//   - the reconciler acts: it decides (decide.go, a pure function of the spec and the task's
//     record) and drives the runner or records the transitions it decides, without ever
//     waiting on the API server;
//   - the status writer reports: it writes each task's status from what PostgreSQL holds, only
//     when it changed, and tells in Events what is worth telling.
//
// Both read the journal (internal/journal), the operator's outbox to PostgreSQL and its memory
// of the tasks it owns. Ownership itself (internal/membership) fences every write, so a task is
// run, recorded and reported by one operator process at a time.
//
// The other controllers have a package each: schedule fires TaskSchedules, tasktype publishes
// the TaskTypes this deployment serves, and sharder spreads the tasks over the replicas
// (--sharding). What they share (how a controller is woken, the bounds of what it writes) is
// in internal/kit.
package controllers
