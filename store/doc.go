// Package store records BackgroundTask lifecycles in PostgreSQL.
//
// Two tables form a public contract for people who query with plain SQL from
// outside the cluster (see docs/schema.md): background_tasks holds one row per
// task with its current state, background_task_transitions is the
// append-only history of every state change.
//
// Write discipline. A task's owner (an operator process, named with its
// fencing token from the taskpilot_owner_epoch sequence) is the single writer
// of its lifecycle. It computes each transition with package lifecycle and
// calls RecordTransition, which writes the columns lifecycle.Apply computed if
// and only if the row is still where the owner believes it is (status,
// attempt, last_seq) and still the owner's (owner_epoch). A replay of the
// owner's own transition is a no-op, so retries are safe; another owner's
// write fails with ErrFenced, a stale view with ErrConflict; nothing is ever
// overwritten. Claim moves a row to a new owner only from nobody or from an
// owner the caller established is gone (a compare-and-swap).
//
// Durability. The store never buffers: a call either committed or returned an
// error. When PostgreSQL is unreachable, the operator's journal keeps
// unrecorded transitions in memory and retries them in order with backoff
// while IsTransient(err) is true. Task execution is at-least-once (a crash
// can rerun work from the last checkpoint); recorded transitions are
// exactly-once per (task_uid, seq).
//
// Schema changes are versioned SQL migrations embedded in the binary and
// applied by goose under a PostgreSQL advisory lock (see Migrate).
package store
