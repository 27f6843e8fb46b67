package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/taskpilot/taskpilot/test/pgtest"
)

// preflight checks everything that can be checked before starting anything, so that a
// problem is reported as what to do rather than as a failure halfway through start-up.
func (d *devEnv) preflight() error {
	var err error
	if d.dir, err = filepath.Abs(d.cfg.dir); err != nil {
		return fmt.Errorf("state dir %s: %w", d.cfg.dir, err)
	}
	d.kubeconfig = filepath.Join(d.dir, "kubeconfig")
	d.envFile = filepath.Join(d.dir, "env")
	if err := d.forgetOwnDatabaseURL(); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if d.lock, err = lockStateDir(d.dir); err != nil {
		return err
	}
	if d.cfg.readyFile != "" {
		// Left behind by a run that was killed: it must not announce this run too early.
		if err := os.Remove(d.cfg.readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove old ready file: %w", err)
		}
	}

	var problems []string
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(d.cfg.assets, name)); err != nil {
			problems = append(problems, fmt.Sprintf("no %s in %s: it is built once from Go modules; run `make envtest` (`make dev` does it for you), or point %s or KUBEBUILDER_ASSETS at a directory holding etcd and kube-apiserver", name, d.cfg.assets, flagHint("assets")))
			break
		}
	}
	if fi, err := os.Stat(d.cfg.operator); err != nil || fi.IsDir() {
		problems = append(problems, fmt.Sprintf("no operator binary at %s: run `make build` (`make dev` does it for you), or set %s", d.cfg.operator, flagHint("operator")))
	}
	if _, err := os.Stat(d.cfg.crdDir); err != nil {
		problems = append(problems, fmt.Sprintf("no CRD manifests in %s: run from the repository root, or set %s", d.cfg.crdDir, flagHint("crd-dir")))
	}
	if d.cfg.databaseURL == "" {
		if _, err := pgtest.BinDir(); err != nil {
			problems = append(problems, "PostgreSQL server binaries (initdb, postgres) not found: install them with `apt-get install postgresql-15` (or set PGTEST_BINDIR to their directory), or set DATABASE_URL to use an existing server")
		}
	}

	ports := []struct{ addr, what, flag string }{
		{d.cfg.apiserverAddr, "kube-apiserver", "apiserver-addr"},
		{d.cfg.metricsAddr, "operator metrics", "metrics-addr"},
		{d.cfg.probeAddr, "operator health probes", "probe-addr"},
	}
	if d.cfg.databaseURL == "" {
		ports = append(ports, struct{ addr, what, flag string }{net.JoinHostPort("127.0.0.1", strconv.Itoa(d.cfg.postgresPort)), "PostgreSQL", "postgres-port"})
	}
	portTaken := false
	for _, p := range ports {
		if p.addr == "0" {
			continue
		}
		err := checkPortFree(p.addr)
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			portTaken = true
			problems = append(problems, fmt.Sprintf("%s (%s) is already in use: choose another with %s", p.addr, p.what, flagHint(p.flag)))
		case err != nil:
			problems = append(problems, fmt.Sprintf("cannot listen on %s (%s): %v: choose another address with %s", p.addr, p.what, err, flagHint(p.flag)))
		}
	}
	if len(problems) > 0 {
		msg := "cannot start:\n  - " + strings.Join(problems, "\n  - ")
		if portTaken {
			msg += "\nIs another `make dev` running? Stop it with Ctrl-C in its terminal."
		}
		return errors.New(msg)
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		d.log.Info("kubectl is not on PATH; you will need it to create BackgroundTasks")
	}
	return nil
}

// forgetOwnDatabaseURL clears a DATABASE_URL that is the one this state directory's env file
// exports: it names the local server this tool starts, so start it as usual. The variable
// goes from the environment too, where pgtest would otherwise take it for an external server.
func (d *devEnv) forgetOwnDatabaseURL() error {
	if d.cfg.databaseURL == "" || d.cfg.databaseURL != writtenDatabaseURL(d.envFile) {
		return nil
	}
	d.log.Info("DATABASE_URL is the one written to " + d.displayPath(d.envFile) + ": starting its PostgreSQL as usual")
	d.cfg.databaseURL = ""
	if err := os.Unsetenv("DATABASE_URL"); err != nil {
		return fmt.Errorf("unset DATABASE_URL: %w", err)
	}
	return nil
}

// checkPortFree fails if addr cannot be listened on.
func checkPortFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return l.Close()
}

// lockStateDir takes an exclusive lock on dir/dev.lock, held as long as the returned file is
// open, so two runs cannot share one state directory. The lock file records the holder's pid
// for the error message; the kernel releases the lock when the process dies, however it dies.
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another `make dev` (pid %s): stop it first (Ctrl-C in its terminal), or use another state directory with %s",
				dir, strings.TrimSpace(string(holder)), flagHint("dir"))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return f, nil
}
