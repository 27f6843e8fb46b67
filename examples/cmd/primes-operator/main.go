// Command primes-operator is the operator of docs/runner.md's tutorial: taskpilot with the
// primes task type.
package main

import (
	"os"

	"github.com/taskpilot/taskpilot/examples/primes"
	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
)

func main() {
	os.Exit(operator.Run(func(reg *runner.Registry) error {
		return runner.Register(reg, "Counts the primes below a limit", primes.New)
	}))
}
