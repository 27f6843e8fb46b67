// Package store records BackgroundTask lifecycles in PostgreSQL.
//
// Two tables form a public contract for people who query with plain SQL from
// outside the cluster (see docs/schema.md): background_tasks holds one row per
// task with its current state, background_task_transitions is the
// append-only history of every state change.
//
// Write discipline. The controller's recorder is the single writer of a
// task's lifecycle. It numbers transitions (Seq) itself and calls
// RecordTransition, which applies the change only if the row is still in the
// state the recorder believes it is in (From, PrevAttempt, Seq-1). A replay of
// an already recorded transition is a no-op, so retries are safe, and a
// conflicting write fails with ErrStaleTransition instead of overwriting.
//
// Durability. The store never buffers: a call either committed or returned an
// error. When PostgreSQL is unreachable, the controller keeps unrecorded
// transitions in its in-memory outbox and retries them in order with backoff
// while IsTransient(err) is true. Task execution is at-least-once (a crash
// can rerun work from the last checkpoint); recorded transitions are
// exactly-once per (task_uid, seq).
//
// Schema changes are versioned SQL migrations embedded in the binary and
// applied by goose under a PostgreSQL advisory lock (see Migrate).
package store
