// Package bulk applies one lifecycle verb (pause, resume, stop, restart) to many
// BackgroundTasks at once: one merge patch per task, a bounded number in flight, each decided
// from the object as read. A restart is written only if that object is still current (its
// resourceVersion), so two people restarting the same task at once make two restarts, not
// one. It reports per task whether spec changed, already said so, or failed and why, and can
// wait, on a watch, until every task reached the phase the verb asks for.
package bulk
