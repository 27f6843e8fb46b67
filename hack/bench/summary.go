package main

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"
)

// summaryRow is one line of the summary: what, measured, target, verdict.
type summaryRow struct{ what, value, target, verdict string }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func secs(f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms", f*1000)
}

func summaryRows(r *results) []summaryRow {
	var rows []summaryRow
	for _, l := range r.lifecycle {
		t := l.tighter()
		rows = append(rows, summaryRow{
			fmt.Sprintf("throughput, %d noop tasks", l.n),
			fmt.Sprintf("%.0f tasks/s = %.2f× tighter ceiling (%.0f tasks/s, %s)", l.tasksSec, l.ratio(), t.tasksSec, ceilingName(l)),
			"≥ 1.0× ceiling", verdict(l.ratio() >= 1.0),
		})
	}
	for _, l := range r.lifecycle {
		if l.n < 1000 || l.apiCeilWatched.tasksSec == 0 {
			continue
		}
		rows = append(rows, summaryRow{
			fmt.Sprintf("throughput, %d noop tasks, against the same-run ceiling with a watch", l.n),
			fmt.Sprintf("%.0f tasks/s = %.2f× (%.0f tasks/s)", l.tasksSec, l.watchedRatio(), l.apiCeilWatched.tasksSec),
			"≥ 0.9×", verdict(l.watchedRatio() >= 0.9)})
	}
	if len(r.lifecycle) > 0 {
		l := r.lifecycle[len(r.lifecycle)-1]
		per := float64(l.stmts) / float64(l.transitions)
		rows = append(rows, summaryRow{
			fmt.Sprintf("SQL statements per transition (%d tasks)", l.n),
			fmt.Sprintf("%.2f (%.2f commits)", per, float64(l.xacts)/float64(l.transitions)),
			"≤ 2 round trips", verdict(per <= 2),
		})
		rows = append(rows, summaryRow{
			fmt.Sprintf("API writes per task (%d tasks)", l.n),
			fmt.Sprintf("%.2f (create 1, object %.2f, status %.2f, events %.2f)", l.writes.total()/float64(l.n),
				l.writes.objectUpdates()/float64(l.n), l.writes.statusUpdates()/float64(l.n), l.writes.events()/float64(l.n)),
			"≤ 2.5", verdict(l.writes.total()/float64(l.n) <= 2.5),
		})
		rows = append(rows, summaryRow{
			fmt.Sprintf("mirror lag → DB commit p50/p99 (%d tasks)", l.n),
			secs(l.commitP50) + " / " + secs(l.commitP99), "p99 < 100 ms", verdict(l.commitP99 < 0.1),
		})
		rows = append(rows, summaryRow{
			fmt.Sprintf("mirror lag → CR status p50/p99 (%d tasks)", l.n),
			ms(l.crLag.p50) + " / " + ms(l.crLag.p99), "(informational: status is coalesced and budgeted)", "",
		})
	}
	if p := r.pause; p != nil {
		rows = append(rows,
			summaryRow{fmt.Sprintf("pause → CR Paused p50/p99 (%d tasks)", p.n), ms(p.pauseCR.p50) + " / " + ms(p.pauseCR.p99),
				fmt.Sprintf("p99 < %s (1.2 × %d ÷ %.0f status writes/s + 0.5 s)", ms(p.crTarget()), p.n, p.statusCeil),
				verdict(p.statusCeil > 0 && p.pauseCR.p99 < p.crTarget())},
			summaryRow{fmt.Sprintf("pause → row PAUSED p50/p99 (%d tasks)", p.n), ms(p.pauseRow.p50) + " / " + ms(p.pauseRow.p99), "p99 < 250 ms", verdict(p.pauseRow.p99 < 250*time.Millisecond)},
			summaryRow{fmt.Sprintf("operator's share of a pause: spec seen → row committed p50/p99 (%d tasks)", p.n), secs(p.opPauseP50) + " / " + secs(p.opPauseP99), "p99 < 50 ms", verdict(p.opPauseP99 > 0 && p.opPauseP99 < 0.050)},
			summaryRow{fmt.Sprintf("resume → row RUNNING p50/p99 (%d tasks)", p.n), ms(p.resumeRow.p50) + " / " + ms(p.resumeRow.p99), "p99 < 250 ms", verdict(p.resumeRow.p99 < 250*time.Millisecond)},
			summaryRow{fmt.Sprintf("resume → CR Running p50/p99 (%d tasks)", p.n), ms(p.resumeCR.p50) + " / " + ms(p.resumeCR.p99), "(same as pause → CR)", verdict(p.statusCeil > 0 && p.resumeCR.p99 < p.crTarget())},
			summaryRow{fmt.Sprintf("mirror lag pause/resume → CR p50/p99 (%d tasks)", p.n), ms(p.crLag.p50) + " / " + ms(p.crLag.p99), "(informational)", ""},
		)
	}
	if c := r.crash; c != nil {
		rows = append(rows,
			summaryRow{fmt.Sprintf("resume after SIGKILL, %d tasks (from restart)", c.n),
				fmt.Sprintf("%.1f s (ready %.1f s, lease %.1f s, then %.1f s)", c.allRunning.Seconds(), c.ready.Seconds(), c.leader.Seconds(), c.afterLeader.Seconds()),
				"< 10 s", verdict(c.allRunning < 10*time.Second)},
			summaryRow{"work lost per task (age of last durable checkpoint at kill) p99/max",
				ms(c.ckptAge.p99) + " / " + ms(c.ckptAge.max), fmt.Sprintf("≤ 1 checkpoint interval (%v)", c.interval),
				verdict(c.ckptAge.max <= c.interval+100*time.Millisecond && c.regressed == 0)},
		)
	}
	if t := r.takeover; t != nil {
		rows = append(rows, summaryRow{
			fmt.Sprintf("SIGKILL of the leader → all %d running again, warm standby", t.n),
			fmt.Sprintf("%.1f s = lease %.0f s + %.1f s (standby led after %.1f s)", t.allRunning.Seconds(), t.lease.Seconds(), t.afterLease.Seconds(), t.leader.Seconds()),
			"≤ lease + 3 s", verdict(t.resumed == t.n && t.afterLease <= 3*time.Second),
		})
	}
	if o := r.outage; o != nil {
		rows = append(rows, summaryRow{
			fmt.Sprintf("%d running tasks through an API server outage of %.0f s / a PostgreSQL one of %.0f s", o.n, o.api.down.Seconds(), o.pg.down.Seconds()),
			fmt.Sprintf("%d / %d resumed from a checkpoint (work redone), %d / %d new attempts", o.api.resumed, o.pg.resumed, o.api.newAttempts, o.pg.newAttempts),
			"0 redone", verdict(o.api.resumed+o.pg.resumed+o.api.newAttempts+o.pg.newAttempts == 0 && !o.api.exited && !o.pg.exited),
		})
	}
	for _, s := range r.sharding {
		name := fmt.Sprintf("%d replica(s), %d noop tasks", s.replicas, s.n)
		if s.replicas > 1 {
			name = fmt.Sprintf("%d sharded replicas, %d noop tasks", s.replicas, s.n)
		}
		rows = append(rows, summaryRow{name,
			fmt.Sprintf("%.0f tasks/s = %.2f× same-run ceiling (%.0f tasks/s), %.2f API writes/task, running tasks per replica %s",
				s.tasksSec, s.ratio(), s.ceil.tasksSec, s.writesPerTask, intsText(s.shares)),
			"(informational: 1 vs 3)", ""})
		if s.replicas > 1 {
			rows = append(rows, summaryRow{fmt.Sprintf("SIGKILL one of %d sharded replicas → its %d tasks running elsewhere", s.replicas, s.moved),
				fmt.Sprintf("%.1f s = lease %.0f s + %.1f s", s.rebalance.Seconds(), s.lease.Seconds(), (s.rebalance - s.lease).Seconds()),
				"≤ lease + 3 s", verdict(s.rebalance-s.lease <= 3*time.Second)})
		}
	}
	for _, f := range r.footprint {
		target, v := "(slope; the target is at 10,000)", ""
		if f.n >= 10000 {
			target, v = "< 300 MiB at 10,000", verdict(mib(f.rss) < 300)
		}
		rows = append(rows, summaryRow{
			fmt.Sprintf("operator RSS, %d tasks (half running, half paused)", f.n),
			fmt.Sprintf("%.0f MiB (idle %.0f), %.1f KiB/task, %.0f goroutines", mib(f.rss), mib(f.idleRSS), f.bytesPerTask()/1024, f.goroutines),
			target, v,
		})
	}
	if s := r.schedules; s != nil {
		rows = append(rows, summaryRow{
			fmt.Sprintf("schedule firing lag, %d schedules at one second", s.n),
			fmt.Sprintf("p50 %s, p99 %s (%d firings)", ms(s.lag.p50), ms(s.lag.p99), s.firings), "measured", "–"},
			summaryRow{"API writes per schedule firing", fmt.Sprintf("%.2f", s.writesPerFiring), "measured", "–"})
	}
	if q := r.queue; q != nil {
		rows = append(rows, summaryRow{
			fmt.Sprintf("%d noop tasks through a TaskQueue of concurrency %d vs none", q.n, q.concurrency),
			fmt.Sprintf("%.0f vs %.0f tasks/s = ×%.2f", q.queued, q.plain, q.ratio()), "measured (the cost of global admission)", "–"},
			summaryRow{
				fmt.Sprintf("fairness: %d tasks of one tenant, then %d of another, concurrency %d", q.big, q.small, q.fairConcurrency),
				fmt.Sprintf("the small tenant's last task started after %d of the big tenant's", q.bigBeforeSmall),
				"< 20", verdict(q.bigBeforeSmall < 20)})
	}
	if it := r.items; it != nil {
		rows = append(rows, summaryRow{
			fmt.Sprintf("one task of %d no-op items (parallelism %d)", it.n, itemsParallelism),
			fmt.Sprintf("%.0f items/s", it.itemsSec()), "≥ 5,000 items/s", verdict(it.itemsSec() >= 5000)},
			summaryRow{"items against the same-run PostgreSQL ceiling of their statements",
				fmt.Sprintf("×%.2f (ceiling %.0f items/s)", it.itemsSec()/it.ceilingSec(), it.ceilingSec()), "≥ 0.5",
				verdict(it.itemsSec()/it.ceilingSec() >= 0.5)},
			summaryRow{fmt.Sprintf("API writes for the object of %d items; operator RSS peak", it.n),
				fmt.Sprintf("%.0f writes; %d MiB", it.writes.total(), it.rssPeak>>20), "a handful, whatever the number of items", "–"})
	}
	return rows
}

func ceilingName(l lifecycleResult) string {
	if l.tighter().tasksSec == l.pgCeil.tasksSec && l.pgCeil.tasksSec < l.apiCeil.tasksSec {
		return "PostgreSQL"
	}
	return "apiserver/etcd"
}

func printSummary(w io.Writer, r *results) {
	fmt.Fprintf(w, "\ntaskpilot bench — %d cores, %s, wall %v (shared machine: numbers are noisy)\n\n", r.machine.Cores, r.machine.Memory, r.wall.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tVALUE\tTARGET\tVERDICT")
	for _, row := range summaryRows(r) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.what, row.value, row.target, trimStars(row.verdict))
	}
	_ = tw.Flush()
	for _, f := range r.failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
}

func trimStars(s string) string {
	if s == "**missed**" {
		return "MISSED"
	}
	return s
}
