package main

import (
	"fmt"
	"math"
	"os"

	"github.com/prometheus/procfs"

	"github.com/taskpilot/taskpilot/test/harness"
)

// clkTck is USER_HZ, 100 on every Linux the harness runs on (procfs assumes the same).
const clkTck = 100.0

// procStat is what /proc/PID/stat tells about a process.
type procStat struct {
	pid, ppid int
	comm      string
	cpuTicks  uint64 // utime+stime+cutime+cstime (waited-for children included)
	selfTicks uint64 // utime+stime
}

func fromProcfs(pid int, st procfs.ProcStat) procStat {
	self := uint64(st.UTime) + uint64(st.STime)
	return procStat{pid: pid, ppid: st.PPID, comm: st.Comm, selfTicks: self,
		cpuTicks: self + uint64(max(st.CUTime, 0)) + uint64(max(st.CSTime, 0))}
}

func readProcStat(pid int) (procStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	return fromProcfs(pid, st), nil
}

// allProcs lists every readable process.
func allProcs() []procStat {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	out := make([]procStat, 0, len(procs))
	for _, p := range procs {
		if st, err := p.Stat(); err == nil {
			out = append(out, fromProcfs(p.PID, st))
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
func treeTicks(pid int) uint64 { return sumTree(allProcs(), pid) }

// sumTree sums the CPU ticks of pid and its descendants among procs.
func sumTree(procs []procStat, pid int) uint64 {
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
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, 0
	}
	st, err := fs.Stat()
	if err != nil {
		return 0, 0
	}
	return cpuTicks(st.CPUTotal)
}

// cpuTicks turns the machine's CPU seconds into busy and total ticks: busy is all but idle and
// iowait; guest time is already part of user time and is not counted twice.
func cpuTicks(c procfs.CPUStat) (busy, total uint64) {
	ticks := func(s float64) uint64 { return uint64(math.Round(s * clkTck)) }
	busy = ticks(c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal)
	return busy, busy + ticks(c.Idle+c.Iowait)
}
