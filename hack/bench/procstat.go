package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/taskpilot/taskpilot/test/harness"
)

// clkTck is USER_HZ, 100 on every Linux the harness runs on.
const clkTck = 100.0

// procStat is what /proc/PID/stat tells about a process.
type procStat struct {
	pid, ppid int
	comm      string
	cpuTicks  uint64 // utime+stime+cutime+cstime (waited-for children included)
	selfTicks uint64 // utime+stime
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// comm is in parentheses and may contain spaces: split after the last ')'.
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return procStat{}, fmt.Errorf("parse stat of %d", pid)
	}
	f := strings.Fields(string(b[j+2:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("parse stat of %d: %d fields", pid, len(f))
	}
	ps := procStat{pid: pid, comm: string(b[i+1 : j])}
	ps.ppid, _ = strconv.Atoi(f[1])
	for _, k := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseUint(f[k], 10, 64)
		ps.cpuTicks += v
		if k < 13 {
			ps.selfTicks += v
		}
	}
	return ps, nil
}

// allProcs lists every readable process.
func allProcs() []procStat {
	ents, _ := os.ReadDir("/proc")
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ps, err := readProcStat(pid); err == nil {
			out = append(out, ps)
		}
	}
	return out
}

// childPID finds the newest direct child of this process whose command is name.
func childPID(name string) (int, error) {
	best := 0
	for _, p := range allProcs() {
		if p.ppid == os.Getpid() && p.comm == name[:min(15, len(name))] && p.pid > best {
			best = p.pid
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no child process %q found", name)
	}
	return best, nil
}

// treeTicks sums the CPU ticks of pid and all its live descendants.
func treeTicks(pid int) uint64 {
	procs := allProcs()
	kids := map[int][]procStat{}
	var root *procStat
	for i := range procs {
		kids[procs[i].ppid] = append(kids[procs[i].ppid], procs[i])
		if procs[i].pid == pid {
			root = &procs[i]
		}
	}
	if root == nil {
		return 0
	}
	var sum func(p procStat) uint64
	sum = func(p procStat) uint64 {
		t := p.cpuTicks
		for _, k := range kids[p.pid] {
			t += sum(k)
		}
		return t
	}
	return sum(*root)
}

// selfTicks is the CPU of pid alone (its children are accounted separately).
func selfTicks(pid int) uint64 {
	ps, err := readProcStat(pid)
	if err != nil {
		return 0
	}
	return ps.selfTicks
}

// rssBytes is VmRSS of pid.
func rssBytes(pid int) (int64, error) { return harness.RSS(pid) }

// machineTicks returns busy and total CPU ticks of the whole machine (/proc/stat "cpu" line).
func machineTicks() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)[1:]
	for i, s := range f {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}
