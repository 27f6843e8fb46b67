// Command bench measures taskpilot against the physical ceilings of this machine, in one run:
// it starts a control plane (envtest from bin/k8s) and a throwaway PostgreSQL, runs the real
// operator binary as a subprocess, drives scenarios (lifecycle throughput, pause latency,
// resume after crash, footprint, cost per transition), measures the bare apiserver/etcd and
// PostgreSQL ceilings with the same write mix, and writes docs/benchmarks.md.
//
//	make bench                      # full run (< 15 min on 2 cores)
//	go run ./hack/bench --quick ... # smoke run with small sizes
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

func main() {
	kubetest.RunShimIfInvoked() // a restartable control plane runs etcd and kube-apiserver through this binary
	// controller-runtime's client logs nothing we need; without a logger it prints a warning.
	ctrllog.SetLogger(logr.Discard())
	opts, err := parseOptions(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed terminal or pipe must not kill the harness before it stops its processes.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	if err := run(ctx, opts); err != nil {
		fmt.Fprintf(os.Stderr, "\nbench: %v\n", err)
		os.Exit(1)
	}
}
