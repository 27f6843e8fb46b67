// Package sharding spreads BackgroundTasks over several active operator replicas, on
// Kubernetes alone: every replica holds a membership Lease of its own (package membership),
// tasks are assigned to the live ones by consistent hashing of the task's UID with virtual
// nodes (Ring), and the assignment is a label on the BackgroundTask, so each replica's cache
// watches only the tasks it runs.
//
// The design follows timebertt/kubernetes-controller-sharding (and the Bigtable-style
// membership it cites): one elected sharder writes the assignment labels, the replicas only
// read them. A task moves from a live replica only after that replica drained it (stopped the
// run without recording anything and released its row); from a dead one only after its Lease
// expired. Either way the row's fencing token, not the label, decides who may write: a label
// is a hint of where a task should run, the row says who owns it.
package sharding
