package main

// legalStep reports whether from -> to is a step of the lifecycle, for a step that continues
// the attempt (newAttempt false) or starts a new one (true). It is the one place the checks
// take the lifecycle from: today the state diagram of docs/architecture.md, read literally;
// once the operator has a lifecycle package with its own table, this becomes a call to it.
func legalStep(from, to string, newAttempt bool) bool {
	type step struct{ from, to string }
	// attempt says which attempt numbers the diagram allows on each arrow.
	const (
		same = 1 << iota
		newRun
		either = same | newRun
	)
	diagram := map[step]int{
		{"PENDING", "RUNNING"}:  either, // slot free and spec.state Running (first run, a retry's run)
		{"PENDING", "PAUSED"}:   same,   // spec.state Paused while queued
		{"PENDING", "STOPPED"}:  same,   // spec.state Stopped
		{"PENDING", "FAILED"}:   either, // UnknownTaskType / InvalidParams
		{"RUNNING", "PAUSED"}:   same,   // paused at ctl.Yield
		{"PAUSED", "RUNNING"}:   same,   // the same run continues
		{"RUNNING", "FINISHED"}: same,
		{"RUNNING", "FAILED"}:   same,   // error, panic, timeout
		{"FAILED", "PENDING"}:   newRun, // retries left (RetryScheduled)
		{"RUNNING", "STOPPED"}:  same,
		{"PAUSED", "STOPPED"}:   same,
		{"STOPPED", "RUNNING"}:  newRun, // spec.state Running: new attempt, from scratch
		{"FINISHED", "RUNNING"}: newRun, // restartGeneration bumped
		{"FAILED", "RUNNING"}:   newRun, // restartGeneration bumped
		{"RUNNING", "RUNNING"}:  same,   // operator restarted: resume from checkpoint
	}
	rule := diagram[step{from, to}]
	if newAttempt {
		return rule&newRun != 0
	}
	return rule&same != 0
}
