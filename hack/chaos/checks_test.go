package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/witness"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func exec(pid, attempt int, start float64, marks ...float64) witness.Execution {
	e := witness.Execution{ID: "x", PID: pid, Attempt: attempt, Start: at(start)}
	for i, m := range marks {
		e.Marks = append(e.Marks, witness.Mark{Step: i, At: at(m)})
	}
	return e
}

func neverFrozen(int, time.Time, time.Time) bool { return false }

// TestACompletionOnWakingIsAtLeastOnce: an execution frozen after its last step, and taken
// over meanwhile, that completes on waking did its work before the other began: tolerated, and
// counted. Not frozen, the same completion is a double run; woken, a step is one either way.
func TestACompletionOnWakingIsAtLeastOnce(t *testing.T) {
	noFault := func(time.Time) (string, string) { return "", "" }
	frozenFrom := func(pid int, from, to time.Time) bool { return pid == 1 && !at(3).Before(from) && at(3).Before(to) } // frozen at 3 s
	completed := exec(1, 1, 0, 1, 2)
	completed.Ended, completed.Completed, completed.End = true, true, at(15) // on waking, after 2's start
	execs := map[string][]witness.Execution{"u": {completed, exec(2, 1, 10, 11, 12)}}
	r := checkNoDoubleRun(execs, nil, noFault, frozenFrom)
	if !r.held() || !strings.Contains(r.checked, "1 completions by a process frozen") {
		t.Fatalf("a completion on waking is at-least-once: %+v, %s", r.examples, r.checked)
	}
	if r := checkNoDoubleRun(execs, nil, noFault, neverFrozen); r.broken != 1 {
		t.Fatalf("not frozen, a completion after another start is a double run: %d", r.broken)
	}
	woke := exec(1, 1, 0, 1, 2, 14)
	woke.Ended, woke.Completed, woke.End = true, true, at(15)
	if r := checkNoDoubleRun(map[string][]witness.Execution{"u": {woke, exec(2, 1, 10, 11, 12)}}, nil, noFault, frozenFrom); r.broken != 1 {
		t.Fatalf("a step on waking is a double run, frozen or not: %d", r.broken)
	}
}

func TestDoubleRunIsAMarkAfterAnotherStart(t *testing.T) {
	noFault := func(time.Time) (string, string) { return "", "" }
	// A frozen process that never marks again after the other started: not a double run.
	frozen := []witness.Execution{exec(1, 1, 0, 1, 2), exec(2, 1, 10, 11, 12)}
	if r := checkNoDoubleRun(map[string][]witness.Execution{"u": frozen}, nil, noFault, neverFrozen); !r.held() {
		t.Fatalf("frozen without a step after the takeover is not a double run: %+v", r.examples)
	}
	// It wakes up and does one more step after the other started: a double run.
	woke := []witness.Execution{exec(1, 1, 0, 1, 2, 10.5), exec(2, 1, 10, 11, 12)}
	if r := checkNoDoubleRun(map[string][]witness.Execution{"u": woke}, nil, noFault, neverFrozen); r.broken != 1 {
		t.Fatalf("want one double run, got %d", r.broken)
	}
}

// TestAStepRecordedTwiceByOneExecutionIsNotADoubleRun: one execution that recorded a step twice
// (an insert retried after its commit during a PostgreSQL outage) did it once: an execution is
// never compared with itself. A real overlap still counts in both.
func TestAStepRecordedTwiceByOneExecutionIsNotADoubleRun(t *testing.T) {
	noFault := func(time.Time) (string, string) { return "", "" }
	iv := map[string]time.Duration{"u": time.Second}
	e := exec(1, 1, 0, 1, 2, 63)
	e.Marks = append(e.Marks[:2:2], append([]witness.Mark{{Step: 1, At: at(62)}}, e.Marks[2:]...)...) // step 1 written again
	one := map[string][]witness.Execution{"u": {e}}
	if r := checkNoDoubleRun(one, nil, noFault, neverFrozen); !r.held() {
		t.Fatalf("one execution is no double run: %+v", r.examples)
	}
	if got := workRedone(one, iv); got.concurrent != 0 || got.steps != 0 {
		t.Fatalf("one execution's step recorded twice counted as %+v", got)
	}
	two := map[string][]witness.Execution{"u": {exec(1, 1, 0, 1, 2, 10.5), exec(2, 1, 10, 11, 12)}}
	if r, got := checkNoDoubleRun(two, nil, noFault, neverFrozen), workRedone(two, iv); r.broken == 0 || got.concurrent == 0 {
		t.Fatalf("a real overlap counts in both: invariant 1 %d, concurrent %d", r.broken, got.concurrent)
	}
}

func hist(steps ...transition) []transition {
	for i := range steps {
		steps[i].seq = int64(i + 1)
		steps[i].at = at(float64(i))
	}
	return steps
}

func tr(from, to string, attempt int, reason string) transition {
	return transition{from: from, to: to, attempt: attempt, reason: reason}
}

func TestHistoryFollowsTheDiagram(t *testing.T) {
	good := hist(tr("", "PENDING", 0, "Created"), tr("PENDING", "RUNNING", 1, "Started"),
		tr("RUNNING", "FAILED", 1, "Error"), tr("FAILED", "PENDING", 2, "RetryScheduled"),
		tr("PENDING", "RUNNING", 2, "Started"), tr("RUNNING", "RUNNING", 2, "Started"), tr("RUNNING", "FINISHED", 2, "Completed"))
	rows := map[string]rowObs{"u": {uid: "u", status: "FINISHED", attempt: 2, lastSeq: 7}}
	if r := checkHistory(map[string][]transition{"u": good}, rows); !r.held() {
		t.Fatalf("a documented path: %+v", r.examples)
	}
	bad := hist(tr("", "PENDING", 0, "Created"), tr("PENDING", "RUNNING", 1, "Started"), tr("RUNNING", "RUNNING", 2, "Started"))
	rows["u"] = rowObs{uid: "u", status: "RUNNING", attempt: 2, lastSeq: 3}
	if r := checkHistory(map[string][]transition{"u": bad}, rows); r.broken != 1 {
		t.Fatalf("a restart recorded RUNNING -> RUNNING is not in the diagram: %+v", r)
	}
	gap := hist(tr("", "PENDING", 0, "Created"), tr("PENDING", "RUNNING", 1, "Started"))
	gap[1].seq = 3
	rows["u"] = rowObs{uid: "u", status: "RUNNING", attempt: 1, lastSeq: 3}
	if r := checkHistory(map[string][]transition{"u": gap}, rows); r.kinds["seq gap"] != 1 {
		t.Fatalf("want a seq gap: %+v", r)
	}
}

func TestAttempts(t *testing.T) {
	h := hist(tr("", "PENDING", 0, "Created"), tr("PENDING", "RUNNING", 1, "Started"),
		tr("RUNNING", "FINISHED", 1, "Completed"), tr("FINISHED", "RUNNING", 2, "Started"), tr("RUNNING", "FINISHED", 2, "Completed"))
	cr := &crObs{state: v1alpha1.DesiredRunning, restartGeneration: 1, observedRestartGen: 1}
	restart := intent{at: at(2.5), kind: actRestart, state: v1alpha1.DesiredRunning, generation: 1}
	if r := checkAttempts([]attemptInput{{hist: h, intents: []intent{restart}, cr: cr}}); !r.held() {
		t.Fatalf("one bump, one new attempt: %+v", r.examples)
	}
	if r := checkAttempts([]attemptInput{{hist: h, cr: &crObs{state: v1alpha1.DesiredRunning}}}); r.kinds["new attempt nobody asked for"] != 1 {
		t.Fatalf("a new attempt without a bump is a repeated restart: %+v", r)
	}
	if r := checkAttempts([]attemptInput{{hist: h[:3], intents: []intent{restart}, cr: cr}}); r.kinds["restart lost"] != 1 {
		t.Fatalf("a bump without a new attempt is a lost restart: %+v", r)
	}
	// A stop undone before the operator saw it asks for nothing.
	stopStart := []intent{{at: at(1.2), kind: actStop, state: v1alpha1.DesiredStopped}, {at: at(1.4), kind: actStart, state: v1alpha1.DesiredRunning}}
	if r := checkAttempts([]attemptInput{{hist: h[:3], intents: stopStart, cr: &crObs{state: v1alpha1.DesiredRunning}}}); !r.held() {
		t.Fatalf("an unobserved stop: %+v", r.examples)
	}
	// A failure after a restart still has its retries.
	failed := hist(tr("", "PENDING", 0, "Created"), tr("PENDING", "RUNNING", 1, "Started"),
		tr("RUNNING", "FINISHED", 1, "Completed"), tr("FINISHED", "RUNNING", 2, "Started"), tr("RUNNING", "FAILED", 2, "Error"))
	r := checkAttempts([]attemptInput{{hist: failed, intents: []intent{restart}, maxRetries: 1, cr: cr}})
	if r.kinds["retry lost"] != 1 {
		t.Fatalf("want a lost retry: %+v", r)
	}
}

func TestWitnessAgreement(t *testing.T) {
	now := at(100)
	alive := map[int]bool{1: true}
	running := rowObs{status: "RUNNING", attempt: 1, lastAt: at(50)}
	if why := witnessDisagrees(running, []witness.Execution{exec(1, 1, 90, 98, 99)}, alive, nil, now); why != "" {
		t.Fatalf("a live execution: %s", why)
	}
	if why := witnessDisagrees(running, []witness.Execution{exec(2, 1, 90, 98, 99)}, alive, nil, now); why == "" {
		t.Fatal("an execution in a dead process is not live")
	}
	done := exec(1, 1, 10, 11)
	done.Ended, done.Completed, done.End = true, true, at(12)
	twice := done
	twice.PID = 2
	finished := rowObs{status: "FINISHED", attempt: 1, lastAt: at(12)}
	if why := witnessDisagrees(finished, []witness.Execution{done}, alive, nil, now); why != "" {
		t.Fatalf("completed once: %s", why)
	}
	if why := witnessDisagrees(finished, []witness.Execution{done, twice}, alive, nil, now); why == "" {
		t.Fatal("completed twice must disagree")
	}
	// SIGKILL 0.2 s after a completion, before its commit: the next owner ran it again
	// (at-least-once), which is not a double run.
	killed := done
	killed.PID = 2
	if why := witnessDisagrees(finished, []witness.Execution{killed, done}, alive, map[int]time.Time{2: at(12).Add(200 * time.Millisecond)}, now); why != "" {
		t.Fatalf("a completion cut short by a kill, then the committed one: %s", why)
	}
	if why := witnessDisagrees(finished, []witness.Execution{killed, done}, alive, map[int]time.Time{2: at(30)}, now); why == "" {
		t.Fatal("a process that lived on after its completion committed it; completing again must disagree")
	}
	paused := rowObs{status: "PAUSED", attempt: 1, lastAt: at(50)}
	if why := witnessDisagrees(paused, []witness.Execution{exec(1, 1, 10, 49, 60)}, alive, nil, now); why == "" {
		t.Fatal("a step after the pause must disagree")
	}
}

func TestAnOutageMayStopNoRunningTask(t *testing.T) {
	outage := []faultRecord{{fault: fault{kind: faultAPIServer}, injected: at(10), recovered: at(20)}}
	withID := func(id string, e witness.Execution) witness.Execution { e.ID = id; return e }
	check := func(es []witness.Execution, changes ...float64) result {
		var ts []time.Time
		for _, c := range changes {
			ts = append(ts, at(c))
		}
		return checkOutagesStopNothing(map[string][]witness.Execution{"u": es}, outage,
			map[string][]time.Time{"u": ts}, nil)
	}
	// It ran on across the outage in the same execution.
	if r := check([]witness.Execution{exec(1, 1, 0, 8, 9, 15, 25)}); !r.held() || r.checked == "" {
		t.Fatalf("one execution across the outage: %+v", r)
	}
	// Stopped and resumed elsewhere during the outage: broken.
	moved := []witness.Execution{withID("a", exec(1, 1, 0, 8, 9)), withID("b", exec(2, 1, 22, 23))}
	if r := check(moved); r.broken != 1 {
		t.Fatalf("a second execution 2 s after the recovery is a restart by the outage: %+v", r)
	}
	// The same, but the user paused and resumed it meanwhile: not the outage's doing.
	if r := check(moved, 12); !r.held() {
		t.Fatalf("a spec change in the window excuses the task: %+v", r)
	}
	// Ended without completing during the outage: broken; by its planned failure: held.
	stopped := exec(1, 1, 0, 8, 9)
	stopped.Ended, stopped.End, stopped.Detail = true, at(12), "context canceled"
	if r := check([]witness.Execution{stopped}); r.broken != 1 {
		t.Fatalf("a run that ended during the outage was stopped by it: %+v", r)
	}
	planned := stopped
	planned.ID, planned.Detail = "a", "injected failure at step 2 of attempt 1"
	if r := check([]witness.Execution{planned, withID("b", exec(1, 2, 14, 15))}); !r.held() {
		t.Fatalf("a planned failure and its retry: %+v", r)
	}
	timedOut := stopped
	timedOut.Detail = "runner: task deadline exceeded"
	if r := check([]witness.Execution{timedOut}); !r.held() {
		t.Fatalf("its own spec.timeout ends a run through an outage as it would without one: %+v", r)
	}
	// Paused (no step in the 5 s before the outage): not running, not judged.
	if r := check([]witness.Execution{withID("a", exec(1, 1, 0, 1)), withID("b", exec(2, 1, 15, 16))}); !r.held() {
		t.Fatalf("a task that did no step for 9 s before the outage was not running: %+v", r)
	}
}

func TestHeapAllocIsReadFromTheProfileText(t *testing.T) {
	text := "heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 123\n# TotalAlloc = 999\n# HeapAlloc = 7456789\n# Sys = 1\n"
	if v, err := heapAlloc(text); err != nil || v != 7456789 {
		t.Fatalf("heapAlloc = %v, %v", v, err)
	}
	if _, err := heapAlloc("no stats"); err == nil {
		t.Fatal("a profile without MemStats must be an error, not 0")
	}
}

func TestEverySlotOnce(t *testing.T) {
	created := time.Date(2026, 12, 5, 12, 0, 1, 0, time.UTC) // first slot 12:00:04
	until := created.Add(11 * time.Second)                   // slots :04, :08, :12
	slot := func(sec int, outcome, child string) firingObs {
		return firingObs{slot: time.Date(2026, 12, 5, 12, 0, sec, 0, time.UTC), outcome: outcome, taskName: child}
	}
	good := scheduleObs{name: "s", created: created, firings: []firingObs{
		slot(4, "created", "s-1796472004"), slot(8, "missed", ""), slot(12, "skipped", ""), slot(16, "created", "s-1796472016"),
	}, children: []string{"s-1796472004", "s-1796472016", "s-1796472020"}} // :20 is after until: on its way
	if r := checkSchedules([]scheduleObs{good}, until); !r.held() || !strings.Contains(r.checked, "3 slots") {
		t.Fatalf("every slot once: %+v", r)
	}
	gap := good
	gap.firings = []firingObs{good.firings[0], good.firings[2]}
	if r := checkSchedules([]scheduleObs{gap}, until); r.broken != 1 || r.kinds["slot without a row"] != 1 {
		t.Fatalf("a slot left out (the child of :16 is after until: on its way): %+v", r)
	}
	odd := good
	odd.firings = append([]firingObs{slot(5, "missed", "")}, good.firings...)
	if r := checkSchedules([]scheduleObs{odd}, until); r.kinds["not a slot"] != 1 {
		t.Fatalf("a row at a time that is not a slot: %+v", r)
	}
	wrong := good
	wrong.firings = []firingObs{slot(4, "created", "s-other"), slot(8, "missed", ""), slot(12, "skipped", ""), slot(16, "created", "s-1796472016")}
	if r := checkSchedules([]scheduleObs{wrong}, until); r.kinds["wrong child"] != 1 {
		t.Fatalf("a row naming another child: %+v", r)
	}
	stray := good
	stray.children = append([]string{"s-1796472008"}, good.children...) // :08 was missed
	if r := checkSchedules([]scheduleObs{stray}, until); r.kinds["child without its row"] != 1 {
		t.Fatalf("a child of a missed slot: %+v", r)
	}
	if r := checkSchedules(nil, until); r.skipped == "" {
		t.Fatal("no schedule: not checked")
	}
}

// probeOf builds a leak probe's rounds for one replica: tasks processed per round, and the heap
// after each (base + perTask*processed + noise).
func probeOf(perTask float64, noise []float64) leakProbe {
	p := leakProbe{tasksPerRound: 1000, noise: map[string]float64{"a": 200 << 10}}
	for i, n := range noise {
		tracked := float64(1000 * (i + 1))
		p.rounds = append(p.rounds, []replicaSample{{replica: "a", tracked: tracked, heap: 8<<20 + perTask*tracked + n}})
	}
	p.slopes, p.processed = heapSlopes(p.rounds[1:])
	return p
}

// TestInvariant6CatchesALeakNotTheCaches: a replica keeping 1 KiB per task processed breaks
// invariant 6 through the sample noise; one whose bounded caches filled in the first round and
// then only wobble holds it; a task entry left after the run breaks it.
func TestInvariant6CatchesALeakNotTheCaches(t *testing.T) {
	noise := []float64{3 << 20, 150 << 10, -100 << 10, 120 << 10} // round 0 fills the caches
	if r := checkMemory(nil, probeOf(0, noise), memSample{}, memSample{}); !r.held() {
		t.Fatalf("bounded caches are no leak: %+v %s", r.examples, r.checked)
	}
	if r := checkMemory(nil, probeOf(1024, noise), memSample{}, memSample{}); r.held() {
		t.Fatalf("1 KiB per task is a leak: %s", r.checked)
	}
	left := []replicaSample{{replica: "a", pid: 7, entries: 3}}
	if r := checkMemory(left, probeOf(0, noise), memSample{}, memSample{}); r.held() {
		t.Fatal("task entries left after every task was deleted must break it")
	}
}

// Invariant 9 counts the tasks of a queue working at once from the witness's steps: three
// overlapping tasks break a concurrency of 2, a place handed on at the same instant does not,
// and a task that held no place doing a step while its queue was paused breaks it too.
func TestInvariant9CountsWorkFromTheWitness(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	exec := func(uid string, marks ...float64) []witness.Execution {
		e := witness.Execution{ID: uid, TaskUID: uid, Attempt: 1, Start: at(marks[0])}
		for i, m := range marks {
			e.Marks = append(e.Marks, witness.Mark{Step: i, At: at(m)})
		}
		return []witness.Execution{e}
	}
	interval := map[string]time.Duration{"a": time.Second, "b": time.Second, "c": time.Second}
	queueOf := map[string]string{"a": "q", "b": "q", "c": "q"}
	limit := map[string]int{"q": 2}
	none := func(time.Time) (string, string) { return "", "" }
	names := map[string]string{"a": "a", "b": "b", "c": "c"}

	// a works [0,2), b [1,3), c starts at 2 when a's place is handed on: two at once.
	execs := map[string][]witness.Execution{"a": exec("a", 0, 1), "b": exec("b", 1, 2), "c": exec("c", 2)}
	r := checkQueues(execs, queueOf, interval, limit, nil, names, none)
	require.True(t, r.held(), "%+v", r.examples)

	// c starts at 1.5 while a and b both work.
	execs["c"] = exec("c", 1.5)
	r = checkQueues(execs, queueOf, interval, limit, nil, names, none)
	require.False(t, r.held())
	require.Contains(t, r.examples[0].what, "3 of its tasks worked at once")

	// c starts at 1.5, when b failed right after its mark at 1 (its end row) and gave its place
	// back: not three at once.
	execs["b"][0].Ended, execs["b"][0].End = true, at(1.2)
	execs["b"][0].Marks = execs["b"][0].Marks[:1]
	r = checkQueues(execs, queueOf, interval, limit, nil, names, none)
	require.True(t, r.held(), "%+v", r.examples)

	// Paused from 5 to 10 with only a holding a place: a may go on, c may not start.
	execs = map[string][]witness.Execution{"a": exec("a", 4.5, 5.5), "c": exec("c", 7)}
	pause := []queuePause{{queue: "q", paused: at(5), until: at(10), held: map[string]bool{"a": true}}}
	r = checkQueues(execs, queueOf, interval, limit, pause, names, none)
	require.False(t, r.held())
	require.Equal(t, "c (c)", r.examples[0].task)
	delete(execs, "c")
	r = checkQueues(execs, queueOf, interval, limit, pause, names, none)
	require.True(t, r.held())
}

// Invariant 10 from a constructed record of a task with three items.
func TestInvariant10ChecksEachItem(t *testing.T) {
	done := func(pid int, start, end float64) witness.ItemExecution {
		return witness.ItemExecution{ID: fmt.Sprint(pid, start), PID: pid, Start: at(start), Ended: true, End: at(end), Completed: true}
	}
	succeeded := []itemTransObs{{1, "pending", "running"}, {2, "running", "succeeded"}}
	good := func() itemsObs {
		o := itemsObs{uid: "u", name: "chaos-items", status: "FINISHED", count: 3,
			rows: map[int]itemRowObs{}, hist: map[int][]itemTransObs{}, execs: map[int][]witness.ItemExecution{}}
		for i := range 3 {
			o.rows[i] = itemRowObs{state: "succeeded", seq: 2, executions: 1}
			o.hist[i] = succeeded
			o.execs[i] = []witness.ItemExecution{done(1, float64(i), float64(i)+0.2)}
		}
		return o
	}
	never := func(int, time.Time, time.Time) bool { return false }
	if r := checkItems(good(), never); !r.held() {
		t.Fatalf("a clean record: %+v", r)
	}

	twice := good()
	twice.execs[1] = []witness.ItemExecution{done(1, 1, 3), done(2, 2, 2.2)}
	if r := checkItems(twice, never); r.kinds["two executions at once"] != 1 {
		t.Fatalf("a completion after another execution started: %+v", r)
	}
	frozen := func(pid int, _, _ time.Time) bool { return pid == 1 }
	if r := checkItems(twice, frozen); !r.held() || !strings.Contains(r.checked, "1 completions by a process frozen") {
		t.Fatalf("a frozen process finishing its item is at-least-once: %+v", r)
	}

	gap := good()
	gap.hist[2] = []itemTransObs{{1, "pending", "running"}, {3, "running", "succeeded"}}
	if r := checkItems(gap, never); r.kinds["history"] != 1 {
		t.Fatalf("a gap in an item's history: %+v", r)
	}

	again := good()
	again.hist[0] = append(succeeded, itemTransObs{3, "succeeded", "succeeded"})
	again.rows[0] = itemRowObs{state: "succeeded", seq: 3}
	if r := checkItems(again, never); r.kinds["did not end once"] != 1 {
		t.Fatalf("an item succeeded twice: %+v", r)
	}

	unseen := good()
	unseen.execs[2] = nil
	if r := checkItems(unseen, never); r.kinds["did not end once"] != 1 {
		t.Fatalf("an item the witness never saw complete: %+v", r)
	}

	paused := good()
	paused.paused = [][2]time.Time{{at(0.1), at(1.5)}} // item 0 runs 0..0.2, item 1 starts at 1
	if r := checkItems(paused, never); r.kinds["while paused"] != 2 {
		t.Fatalf("an item ending after the pause was recorded, another starting while paused: %+v", r)
	}
}
