// Package runner is taskpilot's in-pod task engine: it runs background tasks
// as goroutines inside the operator's own pod and gives them a real lifecycle
// (start, pause, resume, stop, restart, timeout).
//
// The package deliberately knows nothing about Kubernetes or the database.
// The controller drives it through the Runner methods and learns about state
// changes through the Sink and CheckpointSaver interfaces defined here, which
// keeps the engine testable in isolation and lets the durable record stay the
// single source of truth across leader changes.
//
// See docs/runner.md for the state diagram and the rules in prose.
package runner
