// Package journal is the outbox between the runner and PostgreSQL, and the operator's memory
// of the tasks it owns.
//
// The runner reports every transition of a run to the journal (it is the runner's Sink and
// CheckpointSaver) and the controller records the transitions it decides itself (a retry, a
// restart, a stop of a task that runs nowhere). The journal checks each against the lifecycle
// (lifecycle.Next), so an illegal step never queues, and keeps two views of every task:
//
//   - projected: the committed record plus every queued event. Decisions are made from it, so
//     the controller never acts twice on the same change while a write is in flight;
//   - committed: exactly what PostgreSQL holds. Status is built from it only, so the
//     BackgroundTask never shows a phase, result or attempt that a crash could take back.
//
// Writers drain the queue in the background and never block the runner or the controller.
// Each transition is computed at write time from the committed record, so a write that
// PostgreSQL rejects for good (a constraint it violates) is replaced by a Failed transition
// with reason RecordRejected, or dropped with a warning, and later writes still apply: one bad
// write cannot jam a task. Checkpoints, progress and the desired-state mirror are slots (only
// the latest is written). Writers serve tasks round-robin, one write per turn, so a chatty task
// cannot hold a writer. Transitions go to batch writers (half as many), which record those of many tasks
// (one each) in one statement: what queued while a statement was in flight goes in the next,
// so a lone transition waits for no one and a burst costs a few round trips, not one each. Every write is fenced by the process's owner epoch: when another
// process has claimed the task, the write is refused and the journal reports the task fenced,
// so the controller stops its local run.
package journal
