package cli

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
	"github.com/taskpilot/taskpilot/internal/plugin/kube"
)

// verbHelp is what each verb does to spec, and what --wait waits for.
func verbHelp(v bulk.Verb) (short, wait string) {
	switch v {
	case bulk.Pause:
		return "Set spec.state Paused: tasks park at their next pause point", "Paused (or Pending if never started, or a terminal phase)"
	case bulk.Resume:
		return "Set spec.state Running: paused tasks continue, stopped ones start a new attempt", "Running (a task that finished meanwhile counts, and is shown)"
	case bulk.Stop:
		return "Set spec.state Stopped: runs are cancelled", "Stopped (or Finished/Failed if it ended first)"
	case bulk.Restart:
		return "Bump spec.restartGeneration: each task starts a new attempt from scratch", "a new attempt is Running (or already ended)"
	case bulk.RetryFailed:
		return "Run again the items of tasks with items (spec.items) that did not succeed: a restart that keeps the succeeded ones",
			"a new attempt is Running (or already ended)"
	}
	return string(v), ""
}

type verbOptions struct {
	scope       scope
	wait        bool
	timeout     time.Duration
	concurrency int
}

func newVerbCommand(o *options, verb bulk.Verb) *cobra.Command {
	vo := &verbOptions{}
	short, waitFor := verbHelp(verb)
	cmd := &cobra.Command{
		Use:   string(verb) + " (NAME... | -l SELECTOR | --all) [-n NAMESPACE | -A]",
		Short: short,
		Long: short + ".\n\nOne merge patch per task, several at a time, under the field manager \"" + bulk.FieldManager + "\".\n" +
			"A summary table says what changed, what already was so, and what failed and why; the exit\n" +
			"code is 1 if anything failed. --wait then waits, on a watch, until every task is " + waitFor + ".",
		Example: fmt.Sprintf("  kubectl taskpilot %[1]s countdown checksum\n  kubectl taskpilot %[1]s -l batch=nightly --wait\n  kubectl taskpilot %[1]s --all -A", verb),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := vo.scope.resolve(o, args, true); err != nil {
				return err
			}
			return runVerb(cmd.Context(), o, verb, vo)
		},
	}
	vo.scope.addFlags(cmd, true)
	cmd.Flags().BoolVar(&vo.wait, "wait", false, "Wait until every task got there ("+waitFor+")")
	cmd.Flags().DurationVar(&vo.timeout, "timeout", 5*time.Minute, "How long --wait waits")
	cmd.Flags().IntVar(&vo.concurrency, "concurrency", bulk.DefaultConcurrency, "Patches in flight at once")
	return cmd
}

func runVerb(ctx context.Context, o *options, verb bulk.Verb, vo *verbOptions) error {
	if vo.concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	// Ctrl-C stops sending patches and waiting, and still prints what was done.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := o.client()
	if err != nil {
		return err
	}
	targets, err := vo.scope.targets(ctx, c)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "No tasks match.")
		return nil
	}
	progress := newProgressLine(o.streams.ErrOut, verb)
	outcomes := bulk.Apply(ctx, c, verb, targets, bulk.Options{Concurrency: vo.concurrency, Progress: progress.update})
	progress.done()

	if vo.wait {
		progress.waiting(len(outcomes) - bulk.Counts(outcomes)[bulk.Failed])
		wctx, cancel := context.WithTimeout(ctx, vo.timeout)
		err := bulk.Wait(wctx, kube.TaskListWatch(c, vo.scope.namespace, nil), verb, outcomes)
		cancel()
		progress.done()
		if err != nil {
			return err
		}
	}
	if err := bulk.PrintSummary(o.streams.Out, verb, outcomes, vo.scope.withNamespace(), vo.wait); err != nil {
		return err
	}
	if n := bulk.Counts(outcomes)[bulk.Failed]; n > 0 {
		return fmt.Errorf("%d of %d tasks failed", n, len(outcomes))
	}
	return nil
}
