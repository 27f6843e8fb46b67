// Package runner is what a task author writes task types with: taskpilot runs each
// BackgroundTask as a goroutine inside its operator's pod, and a task type is Go code compiled
// into that operator.
//
// A task type is a params struct and a constructor:
//
//	type ReportParams struct {
//		Month string `json:"month" jsonschema:"required,description=the month to report,example=2026-11"`
//	}
//
//	func (ReportParams) TaskName() string { return "monthly-report" }
//
//	type report struct {
//		runner.Base // no-op Pre and Post
//		p ReportParams
//	}
//
//	func (r *report) Run(ctx context.Context, ctl runner.Control) (ReportResult, error) {
//		for page := range pages {
//			if err := ctl.Yield(ctx); err != nil { // a pause point: pause, stop, timeout
//				return ReportResult{}, err
//			}
//			// ... one page of work, then ctl.SaveCheckpoint(ctx, page) ...
//		}
//		return ReportResult{Pages: pages}, nil
//	}
//
//	runner.MustRegister(reg, "Builds the monthly report",
//		func(p ReportParams) (runner.Task[ReportResult], error) { return &report{p: p}, nil })
//
// What a run gets is its Control: pause points (Yield, Sleep), checkpoints (SaveCheckpoint,
// LoadCheckpoint), progress, a logger, the task's labels and annotations, and idempotency keys
// for side effects. Errors end a run Failed and are retried as spec.maxRetries says; Permanent
// marks one that retrying cannot mend. The run's params are decoded strictly and validated
// (Validator) before the constructor sees them; the task types of an operator are published
// with their params' JSON Schema (TypeInfo).
//
// Build an operator with them with package operator (operator.Run), test a task type with
// package runnertest, and find taskpilot's own task types in package builtin. docs/runner.md
// is the tutorial.
package runner
