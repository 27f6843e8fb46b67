package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// defaultBinDir is where Debian/Ubuntu install the PostgreSQL 15 server binaries,
// which are not on PATH there (only the pg_ctl/initdb wrappers are).
const defaultBinDir = "/usr/lib/postgresql/15/bin"

// binDir finds the directory holding initdb and postgres. PGTEST_BINDIR wins,
// then the Debian location, then wherever initdb on PATH lives.
func binDir() (string, error) {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		return d, nil
	}
	if _, err := os.Stat(filepath.Join(defaultBinDir, "postgres")); err == nil {
		return defaultBinDir, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("find PostgreSQL binaries (set PGTEST_BINDIR): %w", err)
	}
	p, err = filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("resolve initdb path: %w", err)
	}
	return filepath.Dir(p), nil
}

// runAs describes the OS identity the server runs under. initdb and postgres
// refuse to run as root, so when we are root they run as the "postgres" user.
type runAs struct {
	cred *syscall.Credential // nil: run as the current user
}

func lookupRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("running as root needs a postgres user to run initdb: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return runAs{}, fmt.Errorf("parse uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return runAs{}, fmt.Errorf("parse gid %q: %w", u.Gid, err)
	}
	return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}}, nil
}

// chown hands dir to the server user so initdb can create the cluster in it.
func (r runAs) chown(dir string) error {
	if r.cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(r.cred.Uid), int(r.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return nil
}

// command builds an exec.Cmd that runs as the server user inside dir.
func (r runAs) command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	return cmd
}
