package main

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/taskpilot/taskpilot/test/harness"
)

// operatorSpec is how to run the operator under test.
type operatorSpec struct {
	binary      string
	kubeconfig  string
	databaseURL string
	logPath     string
	qps, burst  int
	maxTasks    int
	pprof       bool // the binary has --pprof-bind-address
	// identity is --identity: the owner name of the tasks it runs, kept across restarts of the
	// same replica as a pod's name is (empty: the binary's default, host name and pid).
	identity  string
	extraArgs []string
}

// operatorProc is one running operator process (harness.Operator) as the scenarios use it.
type operatorProc struct {
	*harness.Operator
	metricsURL, pprofURL string
}

// hasPprofFlag reports whether the binary lists --pprof-bind-address in its help.
func hasPprofFlag(binary string) bool { return harness.HasFlag(binary, "pprof-bind-address") }

// startOperator starts the binary with production flags (leader election on) plus the
// benchmark's rate limits and ports, and waits until /readyz answers.
func startOperator(ctx context.Context, s operatorSpec) (*operatorProc, error) {
	args := []string{
		"--leader-elect=true", "--leader-election-namespace=default",
		"--kube-api-qps=" + strconv.Itoa(s.qps),
		"--kube-api-burst=" + strconv.Itoa(s.burst),
		"--max-concurrent-tasks=" + strconv.Itoa(s.maxTasks),
	}
	if s.identity != "" {
		args = append(args, "--identity="+s.identity)
	}
	op, err := harness.StartOperator(harness.OperatorSpec{
		Binary: s.binary,
		Args:   append(args, s.extraArgs...),
		// A restart of the same replica is a container restarting in its pod: the same pod UID
		// (an environment variable, which binaries of earlier versions ignore).
		Env:     []string{"KUBECONFIG=" + s.kubeconfig, "DATABASE_URL=" + s.databaseURL, "POD_UID=" + cmp.Or(s.identity, "bench") + "-pod"},
		LogPath: s.logPath,
		Pprof:   s.pprof,
	})
	if err != nil {
		return nil, err
	}
	if err := op.WaitReady(ctx, 60*time.Second); err != nil {
		_ = op.Kill()
		return nil, fmt.Errorf("%w (operator log: %s)", err, s.logPath)
	}
	return &operatorProc{Operator: op, metricsURL: op.MetricsURL, pprofURL: op.PprofURL}, nil
}

func (p *operatorProc) pid() int { return p.PID() }

// stop asks the operator to shut down (SIGTERM) and kills it after 20 s.
func (p *operatorProc) stop() error {
	if p == nil {
		return nil
	}
	return p.Stop(20 * time.Second)
}

// kill is the crash: SIGKILL and wait.
func (p *operatorProc) kill() error {
	if p == nil {
		return nil
	}
	return p.Kill()
}

// scrape reads the operator's metrics endpoint.
func (p *operatorProc) scrape() (metricSet, error) {
	return scrapeURL(p.metricsURL)
}
