package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskpilot/taskpilot/test/freeport"
)

// ErrExternalServer is returned by Stop and Restart when the server comes from
// DATABASE_URL: we do not own it, so outage tests must skip.
var ErrExternalServer = errors.New("pgtest: server is external (DATABASE_URL); cannot stop or restart it")

// ErrNotRunning is returned by Stop when the server is already stopped.
var ErrNotRunning = errors.New("pgtest: server is not running")

const (
	// StopImmediate kills the server like a crash (SIGQUIT): no checkpoint,
	// crash recovery on the next start, clients see their connections drop.
	StopImmediate = "immediate"
	// StopFast disconnects clients and shuts down cleanly (SIGINT).
	StopFast = "fast"

	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
	// dirPrefix names our temp dirs so Start can find stale ones.
	dirPrefix = "pgtest-"
	// ownerFile holds the pid of the test process that owns a temp dir.
	ownerFile = "owner.pid"
)

// Server is a PostgreSQL server for tests: either a throwaway cluster this
// process started, or an external one from DATABASE_URL.
type Server struct {
	adminURL string
	external bool

	// Throwaway-cluster fields; unused when external.
	dir     string // temp dir: data/, server.log, unix socket; the data dir when persistent
	dataDir string
	logPath string
	// socketDir is the unix socket directory (postgres -k); "" disables it.
	socketDir string
	bin       string
	port      int
	as        runAs
	// settings are extra -c name=value server settings (see WithSetting).
	settings []string
	// persistent: the cluster lives in a caller-chosen directory that Close
	// keeps (see WithDataDir); fixedPort: the port from WithPort, or 0;
	// ownProcessGroup: see WithProcessGroup.
	persistent      bool
	fixedPort       int
	ownProcessGroup bool

	dbSeq atomic.Int64 // makes NewDatabase names unique within this process

	mu     sync.Mutex
	proc   *exec.Cmd
	exited chan struct{} // closed when proc has exited
	closed bool
}

// Start returns a server for tests: the one named by DATABASE_URL if set,
// otherwise a freshly initialised cluster on a free loopback port. On failure
// the error names the server log and quotes its tail.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		if _, err := url.Parse(u); err != nil {
			return nil, fmt.Errorf("pgtest: DATABASE_URL must be a postgres:// URL: %w", err)
		}
		return &Server{adminURL: u, external: true}, nil
	}
	bin, err := binDir()
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	as, err := lookupRunAs()
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{bin: bin, as: as}
	for _, o := range opts {
		o(s)
	}
	if s.persistent {
		if err := s.startPersistent(ctx); err != nil {
			return nil, err
		}
		return s, nil
	}
	removeStaleDirs()

	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: create temp dir: %w", err)
	}
	s.dir = dir
	s.dataDir = filepath.Join(dir, "data")
	s.logPath = filepath.Join(dir, "server.log")
	s.socketDir = dir
	if err := s.initCluster(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// A port picked as free can be taken before postgres binds it; retry
	// with a new port a few times (a port fixed by WithPort is tried once).
	for try := 0; ; try++ {
		s.port, err = s.pickPort()
		if err == nil {
			s.adminURL = adminURL(s.port)
			err = s.launch(ctx)
		}
		if err == nil {
			return s, nil
		}
		if try == 2 || ctx.Err() != nil || s.fixedPort != 0 {
			_ = s.Close()
			return nil, err
		}
	}
}

// adminURL is the URL of the admin database of a local server on port.
func adminURL(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// pickPort returns the port from WithPort, or a free one.
func (s *Server) pickPort() (int, error) {
	if s.fixedPort != 0 {
		return s.fixedPort, nil
	}
	return freePort()
}

// initCluster runs initdb in s.dir as the server user.
func (s *Server) initCluster(ctx context.Context) error {
	if err := os.WriteFile(filepath.Join(s.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("pgtest: write owner pid: %w", err)
	}
	if err := s.as.chown(s.dir); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd := s.as.command(s.dir, filepath.Join(s.bin, "initdb"),
		"-D", s.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	out, err := runWithContext(ctx, cmd)
	if err != nil {
		return fmt.Errorf("pgtest: initdb in %s: %w\n%s", s.dir, err, out)
	}
	return nil
}

// launch starts the postmaster on s.port and waits until it accepts
// connections. The postmaster is our child with a parent-death signal, so it
// cannot outlive this process.
func (s *Server) launch(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: open server log: %w", err)
	}
	defer logf.Close() // the child keeps its own copy of the descriptor

	args := []string{
		"-D", s.dataDir,
		"-p", strconv.Itoa(s.port),
		"-k", s.socketDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	}
	for _, kv := range s.settings {
		args = append(args, "-c", kv) // later -c wins
	}
	cmd := s.as.command(s.dir, filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.SysProcAttr.Setpgid = s.ownProcessGroup
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.proc, s.exited = cmd, exited
	s.mu.Unlock()

	if err := s.waitReady(ctx, exited); err != nil {
		_ = s.stop(syscall.SIGQUIT)
		return err
	}
	return nil
}

// waitReady polls until a connection succeeds, the postmaster exits, or the
// deadline passes.
func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres exited during startup (log %s):\n%s", s.logPath, s.logTail())
		default:
		}
		if lastErr = ping(ctx, s.adminURL); lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres not ready (log %s): %w; last error: %w\n%s", s.logPath, ctx.Err(), lastErr, s.logTail())
		case <-exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop signals the postmaster and waits for it to exit, escalating to SIGKILL.
func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.proc, s.exited = nil, nil
	s.mu.Unlock()
	if proc == nil {
		return ErrNotRunning
	}
	_ = proc.Process.Signal(sig)
	select {
	case <-exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = proc.Process.Kill()
	<-exited
	return fmt.Errorf("pgtest: postgres did not stop on %v within %v; killed (log %s)", sig, stopTimeout, s.logPath)
}

// URL is the connection URL of the admin database ("postgres").
func (s *Server) URL() string { return s.adminURL }

// External reports whether the server came from DATABASE_URL: Stop and Restart refuse it.
func (s *Server) External() bool { return s.external }

// LogPath is the server log of a throwaway server ("" when external).
func (s *Server) LogPath() string { return s.logPath }

// Stop stops the server, keeping its data and port, so a test can simulate
// an outage: mode is "immediate" (crash) or "fast" (clean shutdown).
func (s *Server) Stop(mode string) error {
	if s.external {
		return ErrExternalServer
	}
	var sig syscall.Signal
	switch mode {
	case StopImmediate:
		sig = syscall.SIGQUIT
	case StopFast:
		sig = syscall.SIGINT
	default:
		return fmt.Errorf("pgtest: unknown stop mode %q (want %q or %q)", mode, StopImmediate, StopFast)
	}
	return s.stop(sig)
}

// Restart starts a stopped server again on the same port and data.
func (s *Server) Restart() error {
	if s.external {
		return ErrExternalServer
	}
	s.mu.Lock()
	running, closed := s.proc != nil, s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("pgtest: restart after Close")
	}
	if running {
		return errors.New("pgtest: restart while running; Stop first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	return s.launch(ctx)
}

// Close stops a throwaway server and removes its directory. It always tries
// both, is safe to call twice, and is a no-op for external servers. A
// persistent server (WithDataDir) is shut down cleanly instead ("fast" mode)
// and its directory is kept.
func (s *Server) Close() error {
	if s.external {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	if s.persistent {
		if err := s.stop(syscall.SIGINT); err != nil && !errors.Is(err, ErrNotRunning) {
			return err
		}
		return nil
	}
	var errs []error
	if err := s.stop(syscall.SIGQUIT); err != nil && !errors.Is(err, ErrNotRunning) {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: remove %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// logTail returns the last few KiB of the server log for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// freePort returns an unused loopback port outside the ephemeral range (see package freeport).
func freePort() (int, error) {
	p, err := freeport.Pick()
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	return p, nil
}

// runWithContext runs cmd, killing it if ctx ends first, and returns its
// combined output.
func runWithContext(ctx context.Context, cmd *exec.Cmd) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done //nolint:errcheck // killed: its exit status says nothing new
		return out.String(), ctx.Err()
	}
}
