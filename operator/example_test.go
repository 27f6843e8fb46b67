package operator_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"

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

// ExampleOperator_SetupWithManager adds the operator to a program's own controller-runtime
// manager, beside its own controllers: the program keeps its flags, its manager and its probes.
func ExampleOperator_SetupWithManager() {
	o := operator.NewOptions() // the defaults of every flag
	fs := flag.NewFlagSet("reports", flag.ExitOnError)
	o.BindFlags(fs) // --database-url, --max-concurrent-tasks, ... under taskpilot's names
	if err := fs.Parse(os.Args[1:]); err != nil {
		panic(err)
	}
	op, err := operator.New(o, register) // completes and checks o; registers the task types
	if err != nil {
		panic(err)
	}
	defer func() { _ = op.Close() }()

	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), operator.AddToScheme(scheme)); err != nil {
		panic(err)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ByObject: op.CacheByObject()}, // merge the program's own into it
	})
	if err != nil {
		panic(err)
	}
	if err := op.SetupWithManager(mgr); err != nil {
		panic(err)
	}
	for name, check := range op.ReadyChecks() {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			panic(err)
		}
	}
	// ... the program's own controllers ...
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		panic(err)
	}
}
