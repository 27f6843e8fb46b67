package engine

import "github.com/taskpilot/taskpilot/runner"

// The entry is the runner.ItemsHost of a run of a task type with items.
var _ runner.ItemsHost = (*entry)(nil)

// Items is the item source the controller bound to this run (StartSpec.Items).
func (e *entry) Items() (runner.ItemSource, bool) {
	return e.spec.Items, e.spec.Items != nil
}

// Pausing is the pause request Yield acts on: one atomic load.
func (e *entry) Pausing() bool { return e.pauseReq.Load() }

// ReportItems keeps the run's latest counts for Snapshot (the status writer reads them).
func (e *entry) ReportItems(c runner.ItemCounts) {
	e.touch()
	e.items.Store(&c)
}
