package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// Machine describes where a report's numbers come from.
type Machine struct {
	Cores                       int
	CPUModel, Memory, Kernel    string
	GoVersion, Kube, Etcd, Repo string
}

// ReadMachine describes this machine, the control plane binaries and the code under test
// (the git revision, and the operator binary's path).
func ReadMachine(operator string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(strings.TrimPrefix(l, "MemTotal:")); len(f) > 0 {
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Kube = firstLine(exec.Command(filepath.Join(kubetest.Assets(), "kube-apiserver"), "--version"))
	m.Etcd = firstLine(exec.Command(filepath.Join(kubetest.Assets(), "etcd"), "--version"))
	rev := firstLine(exec.Command("git", "-C", kubetest.RepoRoot(), "rev-parse", "--short", "HEAD"))
	if out, _ := exec.Command("git", "-C", kubetest.RepoRoot(), "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		rev += " (with uncommitted changes)"
	}
	m.Repo = rev + ", operator " + relativeToRepo(operator)
	return m
}

func firstLine(cmd *exec.Cmd) string {
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}
