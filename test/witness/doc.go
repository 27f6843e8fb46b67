// Package witness is a task type that exists only in test builds (the operator of make chaos
// and of the sharding tests, test/witness/operator): an independent record of every execution
// of every attempt, kept in its own PostgreSQL table (chaos_witness, in a database of its own)
// over its own connection pool, never through the operator's store or journal. It is what the
// chaos run and the sharding tests compare the operator's record with.
//
// An execution is one call of Run by one process for one (task, attempt): a run resumed after
// a crash or a failover is a new execution of the same attempt, a pause and resume in the same
// process is not. Each execution writes a start row, one mark row per unit of work (right
// after ctl.Yield returned nil, before the work of that step, and only then is the step done),
// and an end row saying whether Run completed.
//
// The busy interval of an execution is [start, last mark], or [start, end] when it completed:
// a process frozen by SIGSTOP does no work while frozen, so it is not busy then; if it wakes
// after another process started the same task and writes another mark, its interval reaches
// into the other's, and that is a real double run.
package witness
