package operator_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

// ReportParams are the params of the "monthly-report" task type.
type ReportParams struct {
	Month string `json:"month" jsonschema:"required,description=the month to report on,example=2026-11"`
}

// TaskName names the task type.
func (ReportParams) TaskName() string { return "monthly-report" }

// Validate refuses what JSON types cannot.
func (p ReportParams) Validate() error {
	if len(p.Month) != len("2026-11") {
		return errors.New(`"month" is YYYY-MM`)
	}
	return nil
}

type report struct {
	runner.Base
	p ReportParams
}

// ReportResult is where a report went.
type ReportResult struct {
	Report string `json:"report"`
}

func newReport(p ReportParams) (runner.Task[ReportResult], error) { return &report{p: p}, nil }

func (r *report) Run(ctx context.Context, ctl runner.Control) (ReportResult, error) {
	if err := ctl.Yield(ctx); err != nil {
		return ReportResult{}, err
	}
	ctl.Logger().Info("building the report", "month", r.p.Month)
	return ReportResult{Report: "s3://reports/" + r.p.Month + ".pdf"}, nil
}

// register is what a team's main passes to operator.Run: its task types, and here the
// built-in ones too.
func register(reg *runner.Registry) error {
	if err := builtin.Register(reg); err != nil {
		return err
	}
	return runner.Register(reg, "Builds the monthly report", newReport)
}

// Example is a complete operator's main: flags, PostgreSQL, leader election, metrics and
// probes, with the team's task type; os.Exit(operator.Run(register)) in a real main. Run
// with -h, as here, it prints its flags (on stderr) and exits 0.
func Example() {
	os.Args = []string{"reports-operator", "-h"}
	fmt.Println("exit code", operator.Run(register))
	// Output: exit code 0
}
