// Package controllers holds the BackgroundTask controllers and their wiring (Setup).
//
// Two controllers share the work, each with its own queue and workers (see
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
package controllers
