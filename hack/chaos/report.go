package main

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// printSummary prints the invariant table and the faults to the terminal.
func printSummary(w io.Writer, res *results) {
	fmt.Fprintf(w, "\ntaskpilot chaos — %s run, seed %d, %d tasks, wall %s\n\n", res.opts.profile.name, res.opts.seed, len(res.pl.tasks), res.wall.Round(time.Second))
	for _, r := range res.invs {
		fmt.Fprintf(w, "  %s. %-70s %-12s %d\n", r.id, r.title, strings.Trim(r.verdict(), "*"), r.broken)
		if r.broken > 0 {
			fmt.Fprintf(w, "       %s\n", r.kindSummary())
			if len(r.examples) > 0 {
				ex := r.examples[0]
				fmt.Fprintf(w, "       e.g. %s seq %d: %s\n", ex.task, ex.seq, ex.what)
			}
		}
	}
	fmt.Fprintln(w)
	for _, f := range res.faults {
		fmt.Fprintf(w, "  %6.1fs %-24s %-50s converged %s\n", f.injected.Sub(res.chaosStart).Seconds(), f.kind, f.target, convergedText(f))
	}
	fmt.Fprintln(w)
}

func convergedText(f faultRecord) string {
	if f.err != nil {
		return "fault failed: " + f.err.Error()
	}
	if f.converged < 0 {
		if f.fewest >= 0 {
			return fmt.Sprintf("no (at best %d tasks disagreed with a leader up)", f.fewest)
		}
		return "no"
	}
	return fmt.Sprintf("%.0f s after recovery", f.converged.Seconds())
}

// writeReport rewrites the markdown report.
func writeReport(path string, res *results) error {
	prev := readPreviousRun(path)
	var b strings.Builder
	md := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	md("# Reliability: `make chaos`")
	md("")
	md("_Rewritten by every run of `make chaos` (`hack/chaos`); do not edit by hand. How the run works and")
	md("what each invariant means exactly: [below](#how-the-run-works); what people (rather than faults) can")
	md("and cannot cause: [threat model](%s)._", threatModelLink(res))
	md("")
	md("Run of %s: **%s** profile, **seed %d**, %d BackgroundTasks, %d user actions, %s, %s; wall time %s.",
		res.started.Format("2006-01-02 15:04 MST"), res.opts.profile.name, res.opts.seed, len(res.pl.tasks),
		len(res.pl.actions), faultCount(res), res.opts.mode(), res.wall.Round(time.Second))
	md("Reproduce with `make chaos ARGS=\"--seed=%d%s\"`: the same seed gives the same load, actions and fault", res.opts.seed, quickArg(res))
	md("schedule; how the processes interleave under them is not reproducible.")
	md("")
	writeInvariants(md, res)
	writePrevious(md, prev)
	writeFaults(md, res)
	writeRecord(md, res)
	writeMachine(md, res)
	writeHowItWorks(md)
	if !res.opts.sharded {
		md("")
		b.WriteString(threatModel)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// threatModel is hack/chaos/threat_model.md, the last section of docs/reliability.md.
//
//go:embed threat_model.md
var threatModel string

func threatModelLink(res *results) string {
	if res.opts.sharded {
		return "reliability.md#threat-model"
	}
	return "#threat-model"
}

func quickArg(res *results) string {
	var arg string
	if res.opts.quick {
		arg += " --quick"
	}
	if res.opts.sharded {
		arg += " --sharded"
	}
	return arg
}

func writeInvariants(md func(string, ...any), res *results) {
	md("## Invariants")
	md("")
	md("| # | invariant | verdict | counter-examples | checked |")
	md("|---|---|---|---|---|")
	for _, r := range res.invs {
		checked := r.checked
		if r.skipped != "" {
			checked = r.skipped
		}
		md("| %s | %s | %s | %d | %s |", r.id, r.title, r.verdict(), r.broken, cell(checked))
	}
	md("")
	for _, r := range res.invs {
		if r.broken == 0 {
			continue
		}
		md("### %s. %s — broken", r.id, r.title)
		md("")
		md("By kind: %s.", r.kindSummary())
		md("")
		md("| task | seq | what happened |")
		md("|---|---|---|")
		for _, ex := range r.examples {
			seq := "–"
			if ex.seq > 0 {
				seq = fmt.Sprint(ex.seq)
			}
			md("| %s | %s | %s |", cell(ex.task), seq, cell(ex.what))
		}
		md("")
	}
}

// faultCount says how many faults were planned, and of them how many were not run or cut short.
func faultCount(res *results) string {
	out := fmt.Sprintf("%d faults", len(res.pl.faults))
	cut := 0
	for _, f := range res.faults {
		if f.cut {
			cut++
		}
	}
	if len(res.notRun) > 0 || cut > 0 {
		out += fmt.Sprintf(" planned (%d injected, %d not run, %d cut short)", len(res.faults), len(res.notRun), cut)
	}
	return out
}

// plannedText is a fault's planned hold ("–" for one without).
func plannedText(f fault) string {
	if f.hold == 0 {
		return "–"
	}
	return f.hold.String()
}

func writeFaults(md func(string, ...any), res *results) {
	md("## Faults")
	md("")
	md("Times are seconds since the load started. _Takeover_: from the fault to another process leading and")
	md("ready. _Converged_: from the recovery (thaw, restart, rogue stopped) to the first moment a ready leader")
	md("runs and every BackgroundTask's phase agrees with its row (see below).")
	md("")
	md("| # | at | fault | target | planned | lasted | takeover | converged | what happened |")
	md("|---|---|---|---|---|---|---|---|---|")
	for i, f := range res.faults {
		takeover := "–"
		if f.takeover > 0 {
			takeover = fmt.Sprintf("%.1f s", f.takeover.Seconds())
		}
		lasted := fmt.Sprintf("%.1f s", f.recovered.Sub(f.injected).Seconds())
		if f.cut {
			lasted += ", **cut short** by the fault deadline"
		}
		md("| %d | %.1f | %s | %s | %s | %s | %s | %s | %s |", i+1, f.injected.Sub(res.chaosStart).Seconds(), f.kind,
			cell(f.target), plannedText(f.fault), lasted, takeover, convergedText(f), cell(f.detail))
	}
	for _, f := range res.notRun {
		md("| – | (%.1f) | %s | – | %s | **not run**: the fault deadline passed before it could start | – | – | – |",
			f.at.Seconds(), f.kind, plannedText(f.fault))
	}
	md("")
	if res.settle >= 0 {
		md("Every task did what its spec says %.0f s after the last fault recovered.", res.settle.Seconds())
	} else {
		md("Not every task did what its spec says within %s of the last fault's recovery (invariant 4).", res.opts.profile.settle)
	}
	md("")
	md("Operator processes (%s; they are restarted whenever they exit, as a Deployment would; the", res.opts.mode())
	md("rogue is the split brain's third operator):")
	md("")
	md("| replica | pid | started | ended | led from | exit |")
	md("|---|---|---|---|---|---|")
	for _, p := range res.procs {
		md("| %s | %d | %s | %s | %s | %s |", p.replica, p.pid, rel(res, p.started), rel(res, p.ended), rel(res, p.leader), cell(p.exit))
	}
	md("")
}

func rel(res *results, t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return fmt.Sprintf("%.1f", t.Sub(res.chaosStart).Seconds())
}

func writeRecord(md func(string, ...any), res *results) {
	md("## Load, record and work redone")
	md("")
	shapes := map[string]int{}
	for _, t := range res.pl.tasks {
		shapes[t.shape]++
	}
	md("Load: %s.", countList(shapes))
	acts := map[string]int{}
	for k, n := range res.actions {
		acts[string(k)] = n
	}
	md("User actions applied: %s.", countList(acts))
	if len(res.failures) > 0 {
		md("Driver requests given up after 90 s of retries: %d (first: %s).", len(res.failures), res.failures[0])
	}
	md("")
	md("Transitions recorded: **%d**. By step: %s.", res.trans, countList(res.pairs))
	md("")
	r := res.redone
	md("Work redone because of crashes (witness steps done again by a later execution of the same attempt,")
	md("because the checkpoint it resumed from was older than the work already done): **%d steps, %.0f s of",
		r.steps, r.seconds)
	md("work, in %d tasks**. Besides, %d steps were done twice at the same time by overlapping executions", r.tasks, r.concurrent)
	md("(invariant 1); %d executions continued an attempt another execution had started; %d attempts", r.resumed, r.completedTwice)
	md("completed more than once.")
	md("")
	for _, p := range res.phases {
		md("- %s: %s", p.name, p.took.Round(time.Second))
	}
	md("")
}

func writeMachine(md func(string, ...any), res *results) {
	m := res.machine
	md("## Machine")
	md("")
	md("| | |")
	md("|---|---|")
	md("| CPU | %d cores, %s (shared with other work: timings are noisy) |", m.Cores, m.CPUModel)
	md("| memory | %s |", m.Memory)
	md("| kernel | %s |", m.Kernel)
	md("| Go | %s |", m.GoVersion)
	md("| Kubernetes | %s; %s (envtest binaries from `bin/k8s`) |", m.Kube, m.Etcd)
	md("| PostgreSQL | %s, durable (fsync, synchronous_commit and full_page_writes on) |", res.pgVersion)
	md("| code | %s |", m.Repo)
	md("| operator flags | `%s` |", strings.Join(operatorArgs("a", true, res.opts.sharded), " "))
	md("")
}

// countList is "a 3, b 2" by decreasing count.
func countList(m map[string]int) string {
	type kv struct {
		k string
		n int
	}
	var kvs []kv
	for k, n := range m {
		kvs = append(kvs, kv{k, n})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].n > kvs[j].n || (kvs[i].n == kvs[j].n && kvs[i].k < kvs[j].k) })
	var parts []string
	for _, p := range kvs {
		parts = append(parts, fmt.Sprintf("%s %d", p.k, p.n))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
