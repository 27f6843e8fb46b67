package main

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

// machineInfo describes where the numbers come from.
type machineInfo struct {
	cores                       int
	cpuModel, memory, kernel    string
	goVersion, kube, etcd, repo string
}

func readMachineInfo(operator string) machineInfo {
	m := machineInfo{cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(strings.TrimPrefix(l, "MemTotal:")); len(f) > 0 {
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				m.memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.kube = firstLine(exec.Command(filepath.Join(kubetest.Assets(), "kube-apiserver"), "--version"))
	m.etcd = firstLine(exec.Command(filepath.Join(kubetest.Assets(), "etcd"), "--version"))
	rev := firstLine(exec.Command("git", "-C", kubetest.RepoRoot(), "rev-parse", "--short", "HEAD"))
	if out, _ := exec.Command("git", "-C", kubetest.RepoRoot(), "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		rev += " (with uncommitted changes)"
	}
	m.repo = rev + ", operator " + operator
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
