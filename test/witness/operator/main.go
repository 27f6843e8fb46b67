// Command operator is the operator of the chaos run and the sharding tests: the real taskpilot
// operator, wired by package operator exactly as main.go wires it, with the witness task type
// registered next to the built-ins. Only hack/chaos and test/sharding build and run it.
package main

import (
	"fmt"
	"os"

	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
	"github.com/taskpilot/taskpilot/test/witness"
)

func main() {
	rec, err := witness.NewRecorder(os.Getenv(witness.URLEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "taskpilot (chaos): %v\n", err)
		os.Exit(1)
	}
	code := operator.Run(func(r *runner.Registry) error {
		if err := builtin.Register(r); err != nil {
			return err
		}
		if err := witness.Register(r, rec); err != nil {
			return err
		}
		return witness.RegisterItems(r, rec)
	})
	rec.Close()
	os.Exit(code)
}
