// Package tasktype publishes, on the elected leader, the TaskTypes an operator deployment
// serves and its keys of the task-type catalog the admission policy reads.
package tasktype
