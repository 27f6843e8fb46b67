package pgtest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// removeStaleDirs cleans up after test processes that died without Close
// (for example killed by `go test -timeout`): for every pgtest temp dir whose
// owner process is gone, it sends SIGQUIT to a postmaster still recorded in
// postmaster.pid and removes the dir. Best effort and cheap; errors are
// ignored because they never affect the server being started.
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		owner, ok := readPid(filepath.Join(dir, ownerFile))
		if !ok || processAlive(owner) {
			continue // not ours to judge, or still in use
		}
		if pm, ok := readPid(filepath.Join(dir, "data", "postmaster.pid")); ok && processAlive(pm) {
			_ = syscall.Kill(pm, syscall.SIGQUIT)
		}
		_ = os.RemoveAll(dir)
	}
}

// readPid reads the first line of a pid file.
func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
