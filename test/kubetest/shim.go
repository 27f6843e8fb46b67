package kubetest

// envtest starts etcd and kube-apiserver itself, with no way to set a parent-death signal on
// them, so if the harness were killed (SIGKILL, a crashed terminal) they would live on,
// holding the API server port and etcd's data directory, and the next run would fail. To
// prevent that, StartInDir points envtest at symlinks to the harness's own binary: started
// under the name "etcd" or "kube-apiserver", it asks the kernel for SIGKILL when its parent
// dies, then execs the real binary, which keeps that setting (and its pid, so envtest still
// stops it normally). Binaries that call StartInDir call RunShimIfInvoked first in main.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

const (
	// shimAssetsEnv names the directory of the real binaries; set only in the harness's
	// environment, which the control plane processes inherit.
	shimAssetsEnv = "TASKPILOT_SHIM_ASSETS"
	// shimParentEnv is the pid the shim expects as its parent.
	shimParentEnv = "TASKPILOT_SHIM_PARENT"
)

// shimmed are the binaries started through the shim.
func shimmed() []string { return []string{"etcd", "kube-apiserver"} }

// RunShimIfInvoked execs the real etcd or kube-apiserver when this process was started as a
// shim by StartInDir, and never returns then; otherwise it returns at once. Call it first in
// main of every binary that uses StartInDir.
func RunShimIfInvoked() {
	if isShim(os.Args[0]) {
		os.Exit(runShim())
	}
}

// ShimEnv reports whether the environment variable kv ("NAME=value") only concerns the shims,
// so that processes the harness starts besides the control plane can drop it.
func ShimEnv(kv string) bool {
	return strings.HasPrefix(kv, shimAssetsEnv+"=") || strings.HasPrefix(kv, shimParentEnv+"=")
}

// isShim reports whether this process was started as a shim (see installShims).
func isShim(argv0 string) bool {
	return slices.Contains(shimmed(), filepath.Base(argv0)) && os.Getenv(shimAssetsEnv) != ""
}

// installShims links dir/shims/{etcd,kube-apiserver} to this executable and sets up the
// environment the shims read. It returns the shim path of each binary.
func installShims(dir, assets string) (map[string]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for the process shims: %w", err)
	}
	absAssets, err := filepath.Abs(assets)
	if err != nil {
		return nil, fmt.Errorf("assets dir %s: %w", assets, err)
	}
	shimDir := filepath.Join(dir, "shims")
	if err := os.MkdirAll(shimDir, 0o755); err != nil {
		return nil, fmt.Errorf("create shim dir: %w", err)
	}
	paths := map[string]string{}
	for _, name := range shimmed() {
		link := filepath.Join(shimDir, name)
		if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("replace shim %s: %w", link, err)
		}
		if err := os.Symlink(self, link); err != nil {
			return nil, fmt.Errorf("create shim %s: %w", link, err)
		}
		paths[name] = link
	}
	if err := os.Setenv(shimAssetsEnv, absAssets); err != nil {
		return nil, fmt.Errorf("set %s: %w", shimAssetsEnv, err)
	}
	if err := os.Setenv(shimParentEnv, strconv.Itoa(os.Getpid())); err != nil {
		return nil, fmt.Errorf("set %s: %w", shimParentEnv, err)
	}
	return paths, nil
}

// runShim replaces this process with the real binary named by argv[0], after arranging for
// SIGKILL when the parent dies. It returns only on failure.
func runShim() int {
	// The parent-death signal belongs to the calling thread, and exec keeps only the thread
	// that calls it: both must be the same thread.
	runtime.LockOSThread()
	name := filepath.Base(os.Args[0])
	real := filepath.Join(os.Getenv(shimAssetsEnv), name)
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "shim: set parent-death signal for %s: %v\n", name, errno)
		return 1
	}
	// The parent may have died before the signal was armed; then nobody would stop us.
	if want := os.Getenv(shimParentEnv); want != "" && want != strconv.Itoa(os.Getppid()) {
		fmt.Fprintf(os.Stderr, "shim: parent %s is gone; not starting %s\n", want, name)
		return 1
	}
	env := slices.DeleteFunc(os.Environ(), ShimEnv)
	err := syscall.Exec(real, append([]string{real}, os.Args[1:]...), env)
	fmt.Fprintf(os.Stderr, "shim: exec %s: %v\n", real, err)
	return 1
}
