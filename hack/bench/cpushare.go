package main

import (
	"os"
	"time"
)

// component is a process tree whose CPU the harness accounts for.
type component struct {
	name string
	pid  int
	self bool // count pid alone, not its descendants (the harness: everything else is its child)
}

// cpuSnapshot is the CPU ticks of each component and of the machine at one instant.
type cpuSnapshot struct {
	at          time.Time
	ticks       map[string]uint64
	busy, total uint64
}

func takeCPU(comps []component) cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), ticks: map[string]uint64{}}
	for _, c := range comps {
		if c.self {
			s.ticks[c.name] = selfTicks(c.pid)
		} else {
			s.ticks[c.name] = treeTicks(c.pid)
		}
	}
	s.busy, s.total = machineTicks()
	return s
}

// cpuShare is CPU seconds spent per component over a window.
type cpuShare struct {
	wall    time.Duration
	cores   int
	seconds map[string]float64 // per component, plus "other" (the rest of the machine) and "idle"
	order   []string
}

func cpuDelta(before, after cpuSnapshot, comps []component) cpuShare {
	cs := cpuShare{wall: after.at.Sub(before.at), seconds: map[string]float64{}}
	sum := 0.0
	for _, c := range comps {
		v := float64(after.ticks[c.name]-before.ticks[c.name]) / clkTck
		cs.seconds[c.name] = v
		cs.order = append(cs.order, c.name)
		sum += v
	}
	busy := float64(after.busy-before.busy) / clkTck
	total := float64(after.total-before.total) / clkTck
	cs.seconds["other processes"] = max(0, busy-sum)
	cs.seconds["idle"] = max(0, total-busy)
	cs.order = append(cs.order, "other processes", "idle")
	cs.cores = max(1, int(total/max(cs.wall.Seconds(), 1e-9)+0.5))
	return cs
}

// benchComponents lists the processes of a stage: the harness itself is "bench (load + watch)".
func benchComponents(st *stage) []component {
	comps := []component{
		{"kube-apiserver", st.cp.apiPID, false},
		{"etcd", st.cp.etcdPID, false},
		{"postgres", st.pg.pid, false},
	}
	if st.op != nil {
		comps = append(comps, component{"taskpilot", st.op.pid(), false})
	}
	return append(comps, component{"bench (load generator, watch)", os.Getpid(), true})
}
