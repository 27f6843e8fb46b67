// Command linkcheck-operator is a taskpilot operator with one task type of its own, linkcheck:
// every flag, metric, probe, leader election and sharding of taskpilot, and this team's code.
package main

import (
	"net/http"
	"os"

	"github.com/taskpilot/taskpilot/examples/linkcheck"
	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
)

func main() {
	os.Exit(operator.Run(func(reg *runner.Registry) error {
		return linkcheck.Register(reg, &http.Client{})
	}))
}
