package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// WithDataDir makes the server persistent: dir is its PostgreSQL data
// directory (PGDATA), initialised by initdb on first use and reused as it is
// afterwards, so data survives Close and the next Start. Close shuts the
// server down cleanly ("fast" mode) and keeps dir. The server log is
// dir/server.log (appended to across runs); no unix socket is created, so
// connect over TCP with URL. Unlike a throwaway server it runs with durable
// settings (fsync, synchronous_commit and full_page_writes on).
//
// If a postmaster recorded in dir/postmaster.pid is still running (left over
// from a killed parent), Start fails with instructions instead of starting a
// second one; a stale postmaster.pid whose process is gone is handled.
func WithDataDir(dir string) Option {
	return func(s *Server) {
		s.persistent = true
		s.dataDir = dir
	}
}

// WithPort makes the server listen on port (on 127.0.0.1) instead of a free
// port picked at random. Start fails if the port is taken.
func WithPort(port int) Option {
	return func(s *Server) { s.fixedPort = port }
}

// WithProcessGroup starts the postmaster in a process group of its own, so a
// Ctrl-C in the terminal reaches only this process, which can then stop its
// clients before the server (Close). Without it the terminal's SIGINT also
// reaches the postmaster, which starts a fast shutdown at once.
func WithProcessGroup() Option {
	return func(s *Server) { s.ownProcessGroup = true }
}

// BinDir returns the directory holding the PostgreSQL server binaries (initdb,
// postgres) that Start uses: $PGTEST_BINDIR, the Debian/Ubuntu location of
// PostgreSQL 15, or the directory of initdb on PATH. It fails when none exists,
// so callers can explain how to install them before starting anything.
func BinDir() (string, error) {
	return binDir()
}

// startPersistent starts (initialising if needed) the cluster in s.dataDir.
func (s *Server) startPersistent(ctx context.Context) error {
	dir, err := filepath.Abs(s.dataDir)
	if err != nil {
		return fmt.Errorf("pgtest: data dir %s: %w", s.dataDir, err)
	}
	s.dir, s.dataDir, s.logPath, s.socketDir = dir, dir, filepath.Join(dir, "server.log"), ""
	// Durable settings replace the speed-over-safety defaults of launch: this
	// data is meant to survive a crash of the machine, not only of the
	// process. Settings from WithSetting come later and still win.
	s.settings = append([]string{"fsync=on", "synchronous_commit=on", "full_page_writes=on"}, s.settings...)
	if err := s.ensureCluster(ctx); err != nil {
		return err
	}
	if err := s.checkLockFile(); err != nil {
		return err
	}
	if s.port, err = s.pickPort(); err != nil {
		return err
	}
	s.adminURL = adminURL(s.port)
	return s.launch(ctx)
}

// ensureCluster runs initdb in s.dataDir unless it already holds a cluster.
// initdb may only use an empty or missing directory; anything else is refused
// rather than overwritten.
func (s *Server) ensureCluster(ctx context.Context) error {
	dir := s.dataDir
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("pgtest: create parent of %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("pgtest: create data dir: %w", err)
		}
	case err != nil:
		return fmt.Errorf("pgtest: read data dir: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("pgtest: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION): remove it or choose another directory", dir)
	}
	if err := s.as.chown(dir); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := s.as.checkSearchable(filepath.Dir(dir)); err != nil {
		return err
	}
	// The parent of dir is not necessarily writable by the server user, so
	// initdb runs in dir itself.
	cmd := s.as.command(dir, filepath.Join(s.bin, "initdb"),
		"-D", dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C")
	if out, err := runWithContext(ctx, cmd); err != nil {
		return fmt.Errorf("pgtest: initdb in %s: %w\n%s", dir, err, out)
	}
	return nil
}

// checkLockFile looks at the postmaster.pid an earlier server left behind. A
// file whose process is gone is left to postgres, which replaces it; a live
// postmaster is reported (starting a second one would fail with a less helpful
// message); a live process that is not postgres has reused the pid of a dead
// postmaster, which postgres would mistake for a running server, so the stale
// file is removed.
func (s *Server) checkLockFile() error {
	path := filepath.Join(s.dataDir, "postmaster.pid")
	pid, ok := readPid(path)
	if !ok || !processAlive(pid) {
		return nil
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) == "postgres" {
		return fmt.Errorf("pgtest: PostgreSQL is already running on %s (pid %d in postmaster.pid), perhaps left over from an earlier run that was killed: stop it with `kill -INT %d` and try again", s.dataDir, pid, pid)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("pgtest: remove stale %s (pid %d is now %q, not postgres): %w", path, pid, strings.TrimSpace(string(comm)), err)
	}
	return nil
}

// checkSearchable fails when the server user cannot enter dir and each of its
// ancestors: when we run as root the server runs as "postgres", and a data dir
// under a private directory such as /root would make initdb fail obscurely.
func (r runAs) checkSearchable(dir string) error {
	if r.cred == nil {
		return nil
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		mode := fi.Mode().Perm()
		var searchable bool
		switch {
		case st.Uid == r.cred.Uid:
			searchable = mode&0o100 != 0
		case st.Gid == r.cred.Gid:
			searchable = mode&0o010 != 0
		default:
			searchable = mode&0o001 != 0
		}
		if !searchable {
			return fmt.Errorf("pgtest: PostgreSQL runs as user postgres (it refuses root), which cannot enter %s (mode %v): run `chmod o+x %s` or choose a data directory elsewhere (e.g. under /var/tmp)", p, mode, p)
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}
