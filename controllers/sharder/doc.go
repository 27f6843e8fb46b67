// Package sharder spreads the BackgroundTasks over an operator deployment's live replicas
// (--sharding): the elected leader hashes each task onto the ring of live members and writes
// the assignment as the task's labels (internal/sharding), which each replica's cache selects.
package sharder
