package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	extraArgs   []string
}

// operatorProc is one running operator process.
type operatorProc struct {
	cmd                            *exec.Cmd
	exited                         chan struct{}
	metricsURL, probeURL, pprofURL string
	started                        time.Time
}

// hasPprofFlag reports whether the binary lists --pprof-bind-address in its help.
func hasPprofFlag(binary string) bool {
	out, _ := exec.Command(binary, "--help").CombinedOutput()
	return strings.Contains(string(out), "pprof-bind-address")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startOperator starts the binary with production flags (leader election on) plus the
// benchmark's rate limits and ports, and waits until /readyz answers.
func startOperator(ctx context.Context, s operatorSpec) (*operatorProc, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	args := []string{
		"--leader-elect=true", "--leader-election-namespace=default",
		"--metrics-bind-address=" + addr(ports[0]),
		"--health-probe-bind-address=" + addr(ports[1]),
		"--kube-api-qps=" + strconv.Itoa(s.qps),
		"--kube-api-burst=" + strconv.Itoa(s.burst),
		"--max-concurrent-tasks=" + strconv.Itoa(s.maxTasks),
	}
	p := &operatorProc{
		metricsURL: "http://" + addr(ports[0]) + "/metrics",
		probeURL:   "http://" + addr(ports[1]) + "/readyz",
	}
	if s.pprof {
		args = append(args, "--pprof-bind-address="+addr(ports[2]))
		p.pprofURL = "http://" + addr(ports[2]) + "/debug/pprof"
	}
	args = append(args, s.extraArgs...)
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open operator log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), s.binary, strings.Join(args, " "))
	cmd := exec.Command(s.binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig, "DATABASE_URL="+s.databaseURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group (Ctrl-C reaches only the harness, which stops it); dies with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start operator %s: %w", s.binary, err)
	}
	p.cmd, p.exited, p.started = cmd, make(chan struct{}), time.Now()
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		_ = p.kill()
		return nil, fmt.Errorf("%w (operator log: %s)", err, s.logPath)
	}
	return p, nil
}

func (p *operatorProc) pid() int { return p.cmd.Process.Pid }

func (p *operatorProc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return errors.New("operator exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(p.probeURL)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("operator not ready after %v", timeout)
}

// stop asks the operator to shut down (SIGTERM) and kills it after 20 s.
func (p *operatorProc) stop() error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(20 * time.Second):
		return p.kill()
	}
}

// kill is the crash: SIGKILL and wait.
func (p *operatorProc) kill() error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return nil
}

// scrape reads the operator's metrics endpoint.
func (p *operatorProc) scrape() (metricSet, error) {
	return scrapeURL(p.metricsURL)
}
