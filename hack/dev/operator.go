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
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// operator is the running taskpilot process.
type operator struct {
	cmd     *exec.Cmd
	log     logr.Logger
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the exit status; read only after exited is closed
}

// exitErr describes how the operator exited; call only after exited is closed.
func (o *operator) exitErr() error {
	if o.waitErr == nil {
		return errors.New("exit status 0")
	}
	return o.waitErr
}

// startOperator runs the operator binary with its logs streamed to ours. It runs in a process
// group of its own so that a Ctrl-C in the terminal reaches only this process, which then
// stops it (the operator treats a second signal as "exit at once"), and gets SIGKILL if this
// process dies.
func (d *devEnv) startOperator() error {
	args := []string{
		"--zap-devel",
		// Plain HTTP on loopback, for curl and the web view; the Deployment serves HTTPS.
		"--metrics-bind-address=" + d.cfg.metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=" + d.cfg.probeAddr,
	}
	args = append(args, d.cfg.operatorArgs...)
	cmd := exec.Command(d.cfg.operator, args...)
	// DATABASE_URL goes through the environment, not the command line, where ps would show it;
	// so does KUBECONFIG, which the operator reads when --kubeconfig is not given.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "MIGRATE_DATABASE_URL=") ||
			strings.HasPrefix(kv, "KUBECONFIG=") || kubetest.ShimEnv(kv)
	}), "DATABASE_URL="+d.postgres.url, "MIGRATE_DATABASE_URL="+d.postgres.migrateURL, "KUBECONFIG="+d.kubeconfig)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the operator %s: %w", d.cfg.operator, err)
	}
	o := &operator{cmd: cmd, log: d.log, exited: make(chan struct{})}
	go func() {
		o.waitErr = cmd.Wait()
		close(o.exited)
	}()
	d.operator = o
	d.log.Info("operator started", "pid", cmd.Process.Pid, "binary", d.cfg.operator, "args", args)
	return nil
}

// waitReady polls the operator's /readyz until it answers 200, then announces it and writes
// the ready file. It gives up if the operator exits, a stop signal arrives, or the ready
// timeout passes.
func (d *devEnv) waitReady(start time.Time) error {
	opStart := time.Now()
	url := "http://" + dialable(d.cfg.probeAddr) + "/readyz"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.After(d.cfg.readyTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = probe(client, url); lastErr == nil {
			break
		}
		select {
		case <-d.operator.exited:
			return fmt.Errorf("the operator exited during start-up (%w); its log is above", d.operator.exitErr())
		case sig := <-d.signals:
			d.log.Info("stopping during start-up", "signal", sig.String())
			return errInterrupted
		case <-deadline:
			return fmt.Errorf("the operator did not report ready on %s within %v (%s); last answer: %w", url, d.cfg.readyTimeout, flagHint("ready-timeout"), lastErr)
		case <-tick.C:
		}
	}
	d.log.Info("taskpilot ready in "+since(opStart)+" (everything up in "+since(start)+")", "readyz", url)
	if d.cfg.readyFile != "" {
		if err := writeFileAtomic(d.cfg.readyFile, []byte(d.envExports()), 0o600); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
		d.readyWritten = true
	}
	return nil
}

// probe GETs url and fails unless it answers 200.
func probe(client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// dialable turns a listen address (":18081", "0.0.0.0:18081") into one to connect to.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// stop sends SIGTERM and waits up to timeout for the operator to exit, then kills it. A
// further signal on signals while waiting kills it at once.
func (o *operator) stop(timeout time.Duration, signals <-chan os.Signal) error {
	select {
	case <-o.exited:
		return nil // it already exited; run reported why
	default:
	}
	start := time.Now()
	o.log.Info("stopping the operator (Ctrl-C again to kill it)", "timeout", timeout)
	if err := o.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal the operator: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-o.exited:
		if o.waitErr != nil {
			return fmt.Errorf("the operator exited with %w while stopping; its log is above", o.waitErr)
		}
		o.log.Info("operator stopped in " + since(start))
		return nil
	case <-signals:
		o.log.Info("killing the operator")
		_ = o.cmd.Process.Kill()
		<-o.exited
		return nil
	case <-timer.C:
		_ = o.cmd.Process.Kill()
		<-o.exited
		return fmt.Errorf("the operator did not stop within %v of SIGTERM and was killed (%s)", timeout, flagHint("stop-timeout"))
	}
}

// writeEnvFile writes the kubeconfig and the env file for `source`.
func (d *devEnv) writeEnvFile() error {
	if err := d.controlPlane.writeKubeconfig(d.kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := writeFileAtomic(d.envFile, []byte(d.envExports()), 0o600); err != nil {
		return fmt.Errorf("write env file: %w", err)
	}
	return nil
}

// envExports is the content of the env and ready files.
func (d *devEnv) envExports() string {
	return "# Written by hack/dev (make dev) for the local taskpilot; load it with: source " + d.displayPath(d.envFile) + "\n" +
		"export KUBECONFIG=" + shellQuote(d.kubeconfig) + "\n" +
		"export DATABASE_URL=" + shellQuote(d.postgres.readerURL) + "\n" +
		"# An operator of your own (docs/runner.md, step 6) runs as the runtime role, as taskpilot's does:\n" +
		"#   DATABASE_URL=$OPERATOR_DATABASE_URL go run ./cmd/my-operator ...\n" +
		"export OPERATOR_DATABASE_URL=" + shellQuote(d.postgres.url) + "\n"
}

// printNextSteps tells the user what to type in another terminal (the README's tour).
func (d *devEnv) printNextSteps() {
	fmt.Fprintf(d.out, `
Starting the operator; its log follows. In another terminal:

    source %s
    kubectl apply -f config/samples/
    kubectl get bgt -w

Ctrl-C here stops everything; data is kept in %s for the next run.

`, d.displayPath(d.envFile), d.displayPath(d.dir))
}

// displayPath is path relative to the working directory when it is below it.
func (d *devEnv) displayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeFileAtomic writes data to path through a temporary file and a rename, so a reader
// never sees a half-written file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
