// Package controllers holds the BackgroundTask reconciler and the pieces it is made of.
//
// Three sources of truth, each with one job (see docs/architecture.md):
//   - spec (Kubernetes) is the desired state, owned by the user;
//   - the runner (package runner) is the actual state of runs in this process;
//   - PostgreSQL (package store) is the durable record every transition is written to.
//
// The Journal sits between the runner and the store: it receives every transition (it is the
// runner's Sink), keeps the latest actual state of each task in memory for the reconciler, and
// writes transitions and checkpoints to PostgreSQL in order, retrying while the database is
// unavailable. The reconciler reads spec and the Journal, decides (decide.go, a pure function),
// acts on the runner, and writes status only when it changed.
package controllers
