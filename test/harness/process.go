package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/taskpilot/taskpilot/test/freeport"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// OperatorSpec is how to run one operator process.
type OperatorSpec struct {
	Binary string
	// Args are the operator's flags; the listen addresses are added by StartOperator.
	Args []string
	// Env is added to the harness's environment (KUBECONFIG, DATABASE_URL, ...).
	Env []string
	// LogPath receives stdout and stderr (appended to, with a header line per start).
	LogPath string
	// Pprof also serves the Go pprof endpoints (--pprof-bind-address).
	Pprof bool
}

// Operator is one running operator process.
type Operator struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // read only after exited is closed
	// Started is when the process was started.
	Started time.Time
	// MetricsURL, ProbeURL (/readyz) and PprofURL ("" without pprof) are its endpoints.
	MetricsURL, ProbeURL, PprofURL string
}

// FreePort returns an unused loopback port outside the ephemeral range (see package freeport).
func FreePort() (int, error) {
	return freeport.Pick()
}

// HasFlag reports whether binary lists flag (without dashes) in its --help.
func HasFlag(binary, flag string) bool {
	out, _ := exec.Command(binary, "--help").CombinedOutput()
	return strings.Contains(string(out), flag)
}

// StartOperator starts the binary with metrics and probes (and pprof) on free loopback ports.
// It does not wait for readiness (see WaitReady). The process runs in its own process group, so
// a Ctrl-C reaches only the harness, which stops it, and it gets SIGKILL if the harness dies.
func StartOperator(s OperatorSpec) (*Operator, error) {
	var ports [3]int
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	o := &Operator{
		MetricsURL: "http://" + addr(ports[0]) + "/metrics",
		ProbeURL:   "http://" + addr(ports[1]) + "/readyz",
	}
	args := append(slices.Clone(s.Args),
		// Plain HTTP on loopback: the tests and benchmarks scrape without a token.
		"--metrics-bind-address="+addr(ports[0]), "--metrics-secure=false",
		"--health-probe-bind-address="+addr(ports[1]))
	if s.Pprof {
		args = append(args, "--pprof-bind-address="+addr(ports[2]))
		o.PprofURL = "http://" + addr(ports[2]) + "/debug/pprof"
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open operator log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "\n==== %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), s.Binary, strings.Join(args, " "))
	cmd := exec.Command(s.Binary, args...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), kubetest.ShimEnv), s.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start operator %s: %w", s.Binary, err)
	}
	o.cmd, o.exited, o.Started = cmd, make(chan struct{}), time.Now()
	go func() {
		o.waitErr = cmd.Wait()
		close(o.exited)
	}()
	return o, nil
}

// PID is the process id.
func (o *Operator) PID() int { return o.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (o *Operator) Exited() <-chan struct{} { return o.exited }

// ExitErr is how the process exited (nil: status 0); valid once Exited is closed.
func (o *Operator) ExitErr() error { return o.waitErr }

// Signal sends sig to the process (not its children).
func (o *Operator) Signal(sig syscall.Signal) error {
	if err := o.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v to operator %d: %w", sig, o.PID(), err)
	}
	return nil
}

// WaitReady polls /readyz until it answers 200, the process exits, ctx ends or timeout passes.
func (o *Operator) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if o.Ready(client) {
			return nil
		}
		select {
		case <-o.exited:
			return fmt.Errorf("operator exited during start-up (%w)", o.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("operator not ready after %v", timeout)
}

// Ready reports whether /readyz answers 200 now.
func (o *Operator) Ready(client *http.Client) bool {
	resp, err := client.Get(o.ProbeURL)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop asks the operator to shut down (SIGTERM) and kills it after timeout.
func (o *Operator) Stop(timeout time.Duration) error {
	if o == nil {
		return nil
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.exited:
		return nil
	case <-time.After(timeout):
		return o.Kill()
	}
}

// Kill is a crash: SIGKILL (which also ends a stopped process) and wait for the exit.
func (o *Operator) Kill() error {
	if o == nil {
		return nil
	}
	_ = o.cmd.Process.Kill()
	<-o.exited
	return nil
}

// Build compiles the main package pkg of this repository (a path relative to its root, such
// as "." or "./test/witness/operator") into out, with the build's output on stderr.
func Build(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir, cmd.Stdout, cmd.Stderr = kubetest.RepoRoot(), os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	return nil
}
