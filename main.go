// Command taskpilot is the taskpilot operator with its built-in task types: it runs
// BackgroundTasks as goroutines inside its own pod, drives them toward their spec.state, and
// records every transition in PostgreSQL. A team's own operator is the same few lines with its
// own task types (see package operator and examples/).
package main

import (
	"os"

	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

func main() {
	os.Exit(operator.Run(builtin.Register))
}
