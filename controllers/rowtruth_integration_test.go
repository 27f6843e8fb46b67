package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// The tests of this file are cases of "the row is the truth": the operator decides from the
// PostgreSQL row and the spec, never from the status or its memory.

// waitSettled waits until the operator tracks the task and has nothing queued for it, then
// until it has reconciled a later generation of it (settle): every decision it makes on
// adoption has been taken and written.
func (h *harness) waitSettled(p *operatorProcess, uid string) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		v, ok := p.op.Journal.View(uid)
		return ok && v.Backlog == 0
	}, waitTimeout, 20*time.Millisecond, "the operator adopts %s and writes what it decides", uid)
	v, _ := p.op.Journal.View(uid)
	h.settle(p, v.NamespacedName.Name)
}

// TestNonRetriableFailureStaysFailedAcrossRestarts: a failure that can never succeed is not retried
// after an operator restart (the reason is in the row, not only in memory).
func TestNonRetriableFailureStaysFailedAcrossRestarts(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	bt := h.create("ghost", "no-such-type", `{}`, func(b *v1alpha1.BackgroundTask) { b.Spec.MaxRetries = 3 })
	uid := string(bt.UID)
	h.waitPhase("ghost", v1alpha1.PhaseFailed, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, lifecycle.ReasonUnknownTaskType))
	h.waitRow(uid, lifecycle.Failed)
	want := []string{"->PENDING@0", "PENDING>FAILED@1"}
	require.Equal(t, want, h.history(uid))

	for range 2 { // a restart, and a failover to another replica
		first.stop()
		first = h.startOperator(operatorConfig{})
		h.waitSettled(first, uid)
		require.Equal(t, want, h.history(uid), "no retry of a spec that can never run")
	}
}

// TestAnUnservedTaskOfAStoppedOperatorIsAdopted: a task of a type no replica serves, recorded by an
// operator that then stops, is adopted by another one: the type being unknown is no reason to stop
// looking at the task (a live owner is told once, and the task must still be looked at again).
func TestAnUnservedTaskOfAStoppedOperatorIsAdopted(t *testing.T) {
	h := newHarness(t)
	a := h.startOperator(operatorConfig{})
	b := h.startOperator(operatorConfig{})
	bt := h.create("ghost", "no-such-type", `{}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Failed)
	owner, survivor := a, b
	if _, ok := b.op.Journal.View(uid); ok {
		owner, survivor = b, a
	}
	// Every write to the object is done before the owner stops (the survivor looked at the task
	// after each, and found it owned), so nothing but the survivor's own recheck brings the
	// task back to it.
	h.waitPhase("ghost", v1alpha1.PhaseFailed)
	h.settle(owner, "ghost")
	time.Sleep(time.Second)
	owner.stop()
	h.waitSettled(survivor, uid)
	require.Equal(t, []string{"->PENDING@0", "PENDING>FAILED@1"}, h.history(uid))
}

// TestRestartIsNotLostAcrossACrash: a restart requested while PostgreSQL is down and interrupted by
// a crash is not lost: the new attempt reaches neither the row nor the status before its commit, so
// the next operator still sees the request and restarts from scratch instead of resuming the old
// attempt.
func TestRestartIsNotLostAcrossACrash(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	first := h.startOperator(operatorConfig{})
	bt := h.create("renewed", "steps", `{"steps":100,"interval":"20ms"}`)
	uid := string(bt.UID)
	require.Eventually(t, func() bool { return h.checkpointNext(uid) >= 5 }, waitTimeout, 20*time.Millisecond)

	require.NoError(t, srv.Stop(pgtest.StopImmediate))
	h.patchSpec("renewed", `{"restartGeneration":1}`)
	require.Eventually(t, func() bool {
		snap, ok := first.op.Runner.Snapshot(runner.Key(uid))
		return ok && snap.Attempt == 2
	}, waitTimeout, 20*time.Millisecond, "the runner starts the new attempt at once")
	h.waitPhase("renewed", v1alpha1.PhaseRunning, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionFalse, "DatabaseUnreachable"))
	h.requireStays("renewed", 1500*time.Millisecond, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.ObservedRestartGeneration == 0 && b.Status.Attempt == 1
	}, "the restart is not shown before it is recorded")
	first.stop() // the crash: what was not written is lost

	require.NoError(t, srv.Restart())
	h.startOperator(operatorConfig{})
	done := h.waitPhase("renewed", v1alpha1.PhaseFinished)
	require.Equal(t, 0, resultStartedAt(t, done), "the restart ran from scratch")
	require.Equal(t, int32(2), done.Status.Attempt)
	require.Equal(t, int64(1), done.Status.ObservedRestartGeneration)
	h.waitRow(uid, lifecycle.Finished)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>STOPPED@1", "STOPPED>RUNNING@2", "RUNNING>FINISHED@2"}, h.history(uid))
}

// TestRestartIsNotRepeatedWhenItsStatusIsLost: a restart committed to PostgreSQL whose status write
// was lost is not repeated by the next operator: the row, not the status, says which restart
// generation was honoured.
func TestRestartIsNotRepeatedWhenItsStatusIsLost(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	bt := h.create("once", "steps", `{"steps":60,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitPhase("once", v1alpha1.PhaseRunning, hasProgress)
	first.stop()

	// An operator whose status writes all fail performs the restart in PostgreSQL only.
	blind := h.startOperator(operatorConfig{failStatusWrites: true})
	h.patchSpec("once", `{"restartGeneration":1}`)
	require.Eventually(t, func() bool {
		row, err := h.repo.GetTask(h.ctx, uid)
		return err == nil && row.Attempt == 2 && row.Status == lifecycle.Running
	}, waitTimeout, 20*time.Millisecond, "the restart is committed")
	require.Zero(t, h.get("once").Status.ObservedRestartGeneration, "its status was never written")
	blind.stop()

	h.startOperator(operatorConfig{})
	done := h.waitPhase("once", v1alpha1.PhaseFinished)
	require.Equal(t, int32(2), done.Status.Attempt, "no second restart")
	require.Equal(t, int64(1), done.Status.ObservedRestartGeneration)
	h.waitRow(uid, lifecycle.Finished)
	hist := h.history(uid)
	require.NotContains(t, strings.Join(hist, " "), "@3")
}

// TestAForgedStatusChangesNothing: whoever may write backgroundtasks/status (not a tenant: the
// editor role only reads it) cannot steer a task through it: a status claiming the run finished,
// with a restart observed, is put right from the row, and the run goes on once.
func TestAForgedStatusChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("forged", "steps", `{"steps":80,"interval":"25ms"}`)
	uid := string(bt.UID)
	h.waitPhase("forged", v1alpha1.PhaseRunning, hasProgress)
	forged := h.get("forged")
	forged.Status.Phase = v1alpha1.PhaseFinished
	forged.Status.ObservedRestartGeneration = 7
	forged.Status.Attempt = 9
	forged.Status.Message = "forged"
	require.NoError(t, h.c.Status().Update(h.ctx, forged))

	h.waitPhase("forged", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.Attempt == 1 && b.Status.ObservedRestartGeneration == 0
	})
	done := h.waitPhase("forged", v1alpha1.PhaseFinished)
	require.Equal(t, int32(1), done.Status.Attempt)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))
}

// TestStatusNeverRunsAheadOfTheRecord: the status never shows what PostgreSQL does not hold: a run
// that finished while the database was down is shown Running (Recorded=False) until its transition
// is committed.
func TestStatusNeverRunsAheadOfTheRecord(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	p := h.startOperator(operatorConfig{})
	bt := h.create("ahead", "steps", `{"steps":40,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)
	require.NoError(t, srv.Stop(pgtest.StopImmediate))
	require.Eventually(t, func() bool {
		snap, _ := p.op.Runner.Snapshot(runner.Key(uid))
		return snap.Status == lifecycle.Finished
	}, waitTimeout, 20*time.Millisecond, "the run finishes while PostgreSQL is down")
	h.waitPhase("ahead", v1alpha1.PhaseRunning, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionFalse, "DatabaseUnreachable"))
	h.requireStays("ahead", 1500*time.Millisecond, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.Phase == v1alpha1.PhaseRunning && b.Status.Result == nil && b.Status.EndTime == nil
	}, "nothing PostgreSQL does not hold is shown")

	require.NoError(t, srv.Restart())
	done := h.waitPhase("ahead", v1alpha1.PhaseFinished, hasCondition(v1alpha1.ConditionRecorded, metav1.ConditionTrue, ""))
	require.NotNil(t, done.Status.Result)
}

// TestTwoOperatorsWithoutLeaderElectionNeverRunATaskTwice: two operators without leader election on
// one cluster and database never run a task twice at the same time; the witness is the tasks' own
// count of their executions, which does not involve the journal.
func TestTwoOperatorsWithoutLeaderElectionNeverRunATaskTwice(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{})
	const tasks = 50
	var uids []string
	for i := range tasks / 2 {
		uids = append(uids, string(h.create(fmt.Sprintf("a%02d", i), "steps", `{"steps":40,"interval":"20ms"}`).UID))
	}
	require.Eventually(t, func() bool { return h.countRows("RUNNING") > 0 }, waitTimeout, 20*time.Millisecond)
	second := h.startOperator(operatorConfig{})
	for i := range tasks / 2 {
		uids = append(uids, string(h.create(fmt.Sprintf("b%02d", i), "steps", `{"steps":40,"interval":"20ms"}`).UID))
	}
	require.Eventually(t, func() bool { return h.countRows("FINISHED") == tasks }, 2*waitTimeout, 50*time.Millisecond)
	require.Empty(t, h.probes.doubles(), "no task ran twice at the same time")
	for _, uid := range uids {
		h.history(uid) // contiguous and legal
	}
	perOwner := h.tasksPerOwner()
	require.Equal(t, tasks, perOwner["op-1"]+perOwner["op-2"], "every task has exactly one owner: %v", perOwner)
	_, _ = first, second
}

// TestOneBadWriteDoesNotJamATask: one write PostgreSQL cannot take does not jam the task: what a
// run produces is made storable where it is produced (NUL, invalid UTF-8), a result too large as
// PostgreSQL measures it fails the attempt with a clear reason, and later writes (a restart, the
// deletion) proceed.
func TestOneBadWriteDoesNotJamATask(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	big := h.create("big", "bigresult", `{}`)
	dirty := h.create("dirty", "dirty", `{}`)

	failed := h.waitPhase("big", v1alpha1.PhaseFailed, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, lifecycle.ReasonResultTooLarge))
	require.Contains(t, failed.Status.Message, "as PostgreSQL stores it")
	require.Equal(t, lifecycle.ReasonResultTooLarge, h.waitRow(string(big.UID), lifecycle.Failed).Reason)
	row := h.waitRow(string(dirty.UID), lifecycle.Failed)
	require.Equal(t, "cannot parse \"\uFFFD\": bad bytes", row.Message, "NUL removed, invalid UTF-8 replaced")

	h.patchSpec("big", `{"restartGeneration":1}`)
	h.waitPhase("big", v1alpha1.PhaseFailed, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Attempt == 2 })
	require.NoError(t, h.c.Delete(h.ctx, big))
	h.waitDeleted(string(big.UID))
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FAILED@1", "FAILED>RUNNING@2", "RUNNING>FAILED@2"},
		h.history(string(big.UID)))
}

// TestAChattyTaskDoesNotStarveOthers: a task that saves large checkpoints as fast as it can (faster
// than PostgreSQL writes them) does not starve the others, even with a single writer: writers serve
// tasks round-robin. The measure is the order of the operator's statements: between the quiet
// task's row and its first transition, only a few of the chatty task's checkpoints may be written
// (the ones written while the quiet task was being handed to the runner, and one turn). A writer
// that drains one task's queue until it is empty writes dozens, however the machine is loaded.
func TestAChattyTaskDoesNotStarveOthers(t *testing.T) {
	h := newHarness(t)
	log := &statementLog{}
	h.startOperator(operatorConfig{journalWriters: 1, statements: log})
	chatty := h.create("chatty", "chatty", `{}`)
	h.waitRow(string(chatty.UID), lifecycle.Running)
	time.Sleep(200 * time.Millisecond) // the chatty task is saving checkpoints flat out
	quiet := h.create("quiet", "noop", `{}`)
	h.waitRow(string(quiet.UID), lifecycle.Finished)
	h.waitPhase("quiet", v1alpha1.PhaseFinished)
	waited := log.checkpointsBetween(string(quiet.UID))
	t.Logf("checkpoint writes before the quiet task's first transition: %d", waited)
	require.GreaterOrEqual(t, waited, 0, "the log saw the quiet task's row and first transition")
	require.LessOrEqual(t, waited, 8, "the quiet task's first transition waited behind %d checkpoint writes", waited)
	h.patchSpec("chatty", `{"state":"Stopped"}`)
	h.waitRow(string(chatty.UID), lifecycle.Stopped)
}

// statementLog is a pgx tracer that keeps, in order, what each statement was about: a
// checkpoint write, a task's creation (its uid among the arguments), or a transition statement
// (the writes of one or more tasks).
type statementLog struct {
	mu      sync.Mutex
	entries []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	entry := ""
	switch {
	case strings.Contains(d.SQL, "SET checkpoint"):
		entry = "checkpoint"
	case strings.Contains(d.SQL, "INSERT INTO background_tasks"): // before: it inserts seq 1 too
		entry = "create " + uidArg(d.Args)
	case strings.Contains(d.SQL, "INSERT INTO background_task_transitions"):
		entry = "transition " + fmt.Sprint(d.Args...) // its writes, the uids among them, in a JSON array
	}
	if entry != "" {
		l.mu.Lock()
		l.entries = append(l.entries, entry)
		l.mu.Unlock()
	}
	return ctx
}

// uidArg finds the Kubernetes UID among a statement's arguments.
func uidArg(args []any) string {
	for _, a := range args {
		if s, ok := a.(string); ok && len(s) == 36 && strings.Count(s, "-") == 4 {
			return s
		}
	}
	return ""
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// checkpointsBetween counts the checkpoint writes between the creation of uid's row and its
// first transition (-1 when either is missing).
func (l *statementLog) checkpointsBetween(uid string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, counting := 0, false
	for _, e := range l.entries {
		switch {
		case e == "create "+uid:
			counting = true
		case counting && strings.HasPrefix(e, "transition ") && strings.Contains(e, uid):
			return n
		case counting && e == "checkpoint":
			n++
		}
	}
	return -1
}

// TestDeletionWithoutFinalizerStopsTheRun: deleting an object that has no finalizer (stripped, or
// never added) stops its run and closes its row; nothing keeps running or stays RUNNING.
func TestDeletionWithoutFinalizerStopsTheRun(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("stripped", "steps", `{"steps":100000,"interval":"20ms"}`)
	uid := string(bt.UID)
	h.waitRow(uid, lifecycle.Running)
	// Strip whatever finalizers the object has, as a careless operator or a tool would.
	require.NoError(t, h.c.Patch(h.ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Name: "stripped", Namespace: h.ns}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))))
	require.NoError(t, h.c.Delete(h.ctx, bt))
	h.requireNotRunning(uid)
	require.Equal(t, lifecycle.Stopped, h.waitDeleted(uid).Status)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>STOPPED@1"}, h.history(uid))
}

// tasksPerOwner counts the harness database's rows per owner.
func (h *harness) tasksPerOwner() map[string]int {
	h.t.Helper()
	rows, err := h.sql.Query(h.ctx, `SELECT coalesce(owner, ''), count(*) FROM background_tasks GROUP BY 1`)
	require.NoError(h.t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var owner string
		var n int
		require.NoError(h.t, rows.Scan(&owner, &n))
		out[owner] = n
	}
	require.NoError(h.t, rows.Err())
	return out
}
