// Command taskpilot is the taskpilot operator: it runs BackgroundTasks as goroutines inside its
// own pod, drives them toward their spec.state, and records every transition in PostgreSQL.
package main

import (
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
)

func main() {
	if err := operator.Main(ctrl.SetupSignalHandler(), os.Args[1:], runner.RegisterBuiltins); err != nil {
		fmt.Fprintf(os.Stderr, "taskpilot: %s\n", operator.OneLine(err))
		os.Exit(1)
	}
}
