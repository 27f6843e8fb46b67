// Package operator builds a taskpilot operator with your own task types: a program that runs
// BackgroundTasks of those types as goroutines in its own pod, drives them toward their
// spec.state and records every transition in PostgreSQL, with every flag, metric, probe, leader
// election and sharding of the taskpilot binary (which is this package with the built-in types).
//
// A task type is a params struct and a constructor, registered with runner.Register (package
// runner is the task author's side):
//
//	type ReportParams struct {
//		Month string `json:"month" jsonschema:"required,description=the month to report on,example=2026-11"`
//	}
//
//	func (ReportParams) TaskName() string { return "monthly-report" }
//
//	func newReport(p ReportParams) (runner.Task[ReportResult], error) { return &report{p: p}, nil }
//
// A binary is then one call (see Example):
//
//	func main() {
//		os.Exit(operator.Run(func(reg *runner.Registry) error {
//			return runner.Register(reg, "Builds the monthly report", newReport)
//		}))
//	}
//
// It takes the same flags as taskpilot (--database-url, --leader-elect, --sharding, ...) plus
// --deployment, which names it when the cluster runs several taskpilot operators: each runs
// only the types it registered, publishes them as TaskType objects (kubectl get tasktypes) and
// in the catalog the admission policy checks new tasks against, and leaves the other
// deployments' tasks alone.
//
// A program that already runs a controller-runtime manager builds the operator with New, gives
// its manager the operator's CacheByObject and adds it with SetupWithManager. Programs that
// create and drive tasks use the Client: Enqueue takes the same params struct as the task type,
// so producer and task type cannot disagree on the name or the fields.
//
// The task contract (pause points, checkpoints, idempotency keys) is in package runner;
// runner/runnertest runs a task type through the real runner in a unit test; runner/builtin
// has taskpilot's own task types; examples/ in this repository is a complete operator of its
// own, with a Dockerfile and a kustomize overlay.
package operator
