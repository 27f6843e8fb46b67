// Command kubectl-taskpilot is the kubectl plugin for taskpilot: `kubectl taskpilot pause -l
// batch=nightly`, `get`, `history`, `ui`. kubectl finds it on PATH by its name; install it with
// `make install-plugin` or `go install ./cmd/kubectl-taskpilot`.
package main

import (
	"context"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/taskpilot/taskpilot/internal/plugin/cli"
)

func main() {
	cmd := cli.NewRootCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
