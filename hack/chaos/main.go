// Command chaos is the reliability run of taskpilot (`make chaos`): a real control plane
// (etcd and kube-apiserver from bin/k8s), a durable PostgreSQL, two operator replicas with
// leader election and short leases, and about 1,000 BackgroundTasks that a driver pauses,
// resumes, stops, restarts and deletes while faults are injected on a schedule drawn from the
// seed: the leader SIGKILLed and SIGSTOPped past its lease, PostgreSQL down for 2 minutes, the
// API server down for 3 minutes and then answering Lease requests late, a third operator
// without leader election (split brain). A witness task type records every execution apart
// from the operator's own record. At the end ten invariants are checked and docs/reliability.md is rewritten with the verdicts and the first
// counter-examples.
//
//	make chaos                          # full run, at most 20 minutes on 2 cores
//	make chaos-quick                    # about 2.5 minutes, report in bin/
//	make chaos-sharded                  # three replicas with --sharding
//	make chaos ARGS="--seed=7"          # another schedule
//
// The exit status is 0 when every invariant held, 3 when the run completed and some did not,
// 1 when the run itself failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

func main() {
	kubetest.RunShimIfInvoked()
	// envtest and controller-runtime's clients log nothing the run needs.
	ctrllog.SetLogger(logr.Discard())
	opts, err := parseOptions(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		os.Exit(2)
	}
	log := zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)).WithName("chaos")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed terminal or pipe must not kill the harness before it stops its processes.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	err = run(ctx, log, opts)
	switch {
	case errors.Is(err, errBroken):
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		stop()
		os.Exit(3)
	case err != nil:
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		stop()
		os.Exit(1)
	}
}
