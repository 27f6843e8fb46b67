// Package lifecycle is the one vocabulary of a BackgroundTask's lifecycle, shared by every
// layer: the statuses (the public SQL contract of background_tasks.status, the runner's
// reports, the CRD's phases through Status.Phase), the reasons, the record that mirrors the
// lifecycle columns of a background_tasks row, and the pure transition function that moves a
// record with an event and produces the history row.
//
// It has no Kubernetes and no database dependency, so task code, tools and other modules can
// import it. The journal applies events in memory with Next and Apply; the store writes the
// resulting columns under its guard with no policy of its own in SQL. A record can always be
// rebuilt by replaying its history (Replay), which is what makes the row, not any process's
// memory, the truth.
package lifecycle
