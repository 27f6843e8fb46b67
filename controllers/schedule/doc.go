// Package schedule is the TaskSchedule controller: it fires a schedule's slots on the elected
// leader, recording each slot's outcome in PostgreSQL before it creates the slot's
// BackgroundTask, so a slot is fired once however many replicas believe they lead
// (docs/architecture.md, under Policies).
package schedule
