package controllers_test

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

func (h *harness) gone(name string) bool {
	err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, &v1alpha1.BackgroundTask{})
	return apierrors.IsNotFound(err)
}

// TestTTLDeletesOnlyAfterTheCommit: a finished task is deleted ttlSecondsAfterFinished after it
// finished, but never before its final transition is in PostgreSQL; the history stays.
func TestTTLDeletesOnlyAfterTheCommit(t *testing.T) {
	h, srv := newHarnessWithOwnDatabaseServer(t)
	p := h.startOperator(operatorConfig{})
	quick := h.create("quick", "noop", `{}`, func(b *v1alpha1.BackgroundTask) { b.Spec.TTLSecondsAfterFinished = ptr.To[int32](1) })
	h.create("failing", "no-such-type", `{}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.TTLSecondsAfterFinished = ptr.To[int32](1)
		b.Spec.TTLSecondsAfterOutcome = &v1alpha1.OutcomeTTL{Failed: ptr.To[int32](3600)}
	})
	require.Eventually(t, func() bool { return h.gone("quick") }, waitTimeout, 50*time.Millisecond)
	require.Equal(t, lifecycle.Finished, h.waitDeleted(string(quick.UID)).Status)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(string(quick.UID)))
	failed := h.waitPhase("failing", v1alpha1.PhaseFailed)
	// Its generic TTL (1 s) has passed: a status writer that ignored the failed outcome's TTL (an
	// hour) would delete it at its next look, which settle makes it take.
	require.Eventually(t, func() bool { return time.Since(failed.Status.EndTime.Time) > 2*time.Second }, waitTimeout, 50*time.Millisecond)
	h.settle(p, "failing")
	require.False(t, h.gone("failing"), "a failed task keeps its own TTL")
	require.Equal(t, v1alpha1.PhaseFailed, h.get("failing").Status.Phase)

	// With PostgreSQL down, a run that finishes is not committed: its object is not deleted.
	late := h.create("late", "steps", `{"steps":20,"interval":"20ms"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.TTLSecondsAfterFinished = ptr.To[int32](0)
	})
	h.waitRow(string(late.UID), lifecycle.Running)
	require.NoError(t, srv.Stop(pgtest.StopImmediate))
	require.Eventually(t, func() bool {
		snap, _ := p.op.Runner.Snapshot(runner.Key(late.UID))
		return snap.Status == lifecycle.Finished
	}, waitTimeout, 20*time.Millisecond)
	h.requireStays("late", 2*time.Second, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Phase != v1alpha1.PhaseFinished },
		"not deleted, not shown Finished, before the commit")
	require.NoError(t, srv.Restart())
	require.Eventually(t, func() bool { return h.gone("late") }, waitTimeout, 50*time.Millisecond)
	require.Equal(t, lifecycle.Finished, h.waitDeleted(string(late.UID)).Status)
}

// TestTTLSparesATaskChangedMeanwhile: the time-to-live deletion is decided on the cached
// object; a restart requested after that (still on its way to the cache) must win, not be
// deleted with the object: the deletion's resourceVersion precondition sees to it.
func TestTTLSparesATaskChangedMeanwhile(t *testing.T) {
	h := newHarness(t)
	var raced, labelled atomic.Bool
	h.startOperator(operatorConfig{beforeDelete: func(obj client.Object) {
		switch {
		case obj.GetName() == "short-lived" && raced.CompareAndSwap(false, true):
			// The user restarts it between the operator's decision and its deletion.
			h.patchSpec("short-lived", `{"restartGeneration":1,"ttlSecondsAfterFinished":null}`)
		case obj.GetName() == "relabelled" && labelled.CompareAndSwap(false, true):
			// A change that leaves the TTL due: the deletion is refused once, then done.
			require.NoError(t, h.c.Patch(h.ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "relabelled"}},
				client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"b"}}}`))))
		}
	}})
	h.create("relabelled", "noop", `{}`, func(b *v1alpha1.BackgroundTask) { b.Spec.TTLSecondsAfterFinished = ptr.To[int32](0) })
	bt := h.create("short-lived", "noop", `{}`, func(b *v1alpha1.BackgroundTask) { b.Spec.TTLSecondsAfterFinished = ptr.To[int32](0) })
	require.Eventually(t, raced.Load, waitTimeout, 20*time.Millisecond, "the operator tried to delete it")
	h.waitPhase("short-lived", v1alpha1.PhaseFinished, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.ObservedRestartGeneration == 1
	})
	require.False(t, h.gone("short-lived"), "the restarted task is kept")
	require.Equal(t, bt.UID, h.get("short-lived").UID)
	require.True(t, labelled.Load())
	require.Eventually(t, func() bool { return h.gone("relabelled") }, waitTimeout, 50*time.Millisecond,
		"a refused deletion is tried again")
}

// TestHistoryRetentionPurgesOnlyOldDeletedTasks: rows soft-deleted longer than the retention
// ago go with their history; every other task keeps a contiguous history.
func TestHistoryRetentionPurgesOnlyOldDeletedTasks(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{historyRetention: 24 * time.Hour})
	var uids []string
	for i := range 4 {
		bt := h.create(fmt.Sprintf("t%d", i), "noop", `{}`)
		uids = append(uids, string(bt.UID))
		h.waitPhase(bt.Name, v1alpha1.PhaseFinished)
	}
	for _, i := range []int{0, 1, 2} {
		require.NoError(t, h.c.Delete(h.ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("t%d", i), Namespace: h.ns}}))
		h.waitDeleted(uids[i])
	}
	// Two of them were deleted long ago.
	_, err := h.sql.Exec(h.ctx, `UPDATE background_tasks SET deleted_at = now() - interval '2 days' WHERE uid = ANY($1)`,
		[]string{uids[0], uids[1]})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_tasks WHERE uid = ANY($1)`, []string{uids[0], uids[1]}).Scan(&n))
		return n == 0
	}, waitTimeout, 100*time.Millisecond, "purged on a sweep")
	for _, uid := range uids[:2] {
		var n int
		require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_task_transitions WHERE task_uid = $1`, uid).Scan(&n))
		require.Zero(t, n, "with their history")
	}
	for _, uid := range uids[2:] {
		require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid), "the rest is kept, contiguous")
	}
	requireMetric(t, h.op, "taskpilot_history_purged_tasks_total", 2)
}

// TestAStalledTaskIsReported: a running task that shows no sign of life for its stallTimeout
// gets Stalled=True, a Warning Event and a Stalled transition; when it comes back to life the
// condition clears.
func TestAStalledTaskIsReported(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("quiet", "silent", `{"silentFor":"3s","aliveFor":"3s"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.StallTimeout = &metav1.Duration{Duration: time.Second}
	})
	uid := string(bt.UID)
	h.waitPhase("quiet", v1alpha1.PhaseRunning, hasCondition(v1alpha1.ConditionStalled, metav1.ConditionTrue, lifecycle.ReasonStalled))
	require.Eventually(t, func() bool { return slicesContains(h.events(uid), "Warning/Stalled") }, waitTimeout, 50*time.Millisecond)
	h.waitPhase("quiet", v1alpha1.PhaseRunning, hasCondition(v1alpha1.ConditionStalled, metav1.ConditionFalse, ""))
	h.waitPhase("quiet", v1alpha1.PhaseFinished)
	h.waitRow(uid, lifecycle.Finished)
	var reasons []string
	recs, err := h.repo.History(h.ctx, uid)
	require.NoError(t, err)
	for _, r := range recs {
		reasons = append(reasons, r.Reason)
	}
	require.Equal(t, []string{"Created", "Started", lifecycle.ReasonStalled, lifecycle.ReasonStallEnded, "Completed"}, reasons)
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestATimeoutThatIsIgnoredFreesTheSlot: a run that ignores its timeout is abandoned after the
// stop grace: recorded Failed (DeadlineExceeded), its slot reused by the next task, the abandoned
// goroutine counted and named in the Event.
func TestATimeoutThatIsIgnoredFreesTheSlot(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{maxConcurrent: 1})
	stubborn := h.create("stubborn", "stubborn", `{"for":"8s"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.Timeout = &metav1.Duration{Duration: time.Second}
	})
	h.waitRow(string(stubborn.UID), lifecycle.Running)
	next := h.create("next", "noop", `{}`)
	failed := h.waitPhase("stubborn", v1alpha1.PhaseFailed, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, lifecycle.ReasonDeadlineExceeded))
	require.Contains(t, failed.Status.Message, "abandoned")
	h.waitRow(string(next.UID), lifecycle.Finished) // the slot was freed while the goroutine still ran
	requireMetric(t, h.op, "taskpilot_runner_abandoned_runs", 1)
	require.Eventually(t, func() bool { return strings.Contains(h.eventNotes(string(stubborn.UID)), "abandoned") }, waitTimeout, 50*time.Millisecond)
	require.Eventually(t, func() bool { return h.op.op.Runner.Stats().Abandoned == 0 }, waitTimeout, 100*time.Millisecond,
		"counted until the goroutine returns")
}

// TestBackoffFollowsTheSpec: the retry is due at the failure time plus spec.backoff, in the row
// and in the status; every operator computes the same time from the row.
func TestBackoffFollowsTheSpec(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("retry", "flaky", `{"key":"r","failures":1}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.MaxRetries = 1
		b.Spec.Backoff = &v1alpha1.Backoff{Initial: &metav1.Duration{Duration: 3 * time.Second}}
	})
	uid := string(bt.UID)
	pending := h.waitPhase("retry", v1alpha1.PhasePending, func(b *v1alpha1.BackgroundTask) bool { return b.Status.NextRetryTime != nil })
	recs, err := h.repo.History(h.ctx, uid)
	require.NoError(t, err)
	failedAt := recs[len(recs)-2].At
	require.Equal(t, lifecycle.ReasonRetryScheduled, recs[len(recs)-1].Reason)
	require.True(t, recs[len(recs)-1].RetryAt.Equal(failedAt.Add(3*time.Second)), "retry_at = failure + backoff.initial: %v vs %v", recs[len(recs)-1].RetryAt, failedAt)
	require.Equal(t, failedAt.Add(3*time.Second).Truncate(time.Second).Unix(), pending.Status.NextRetryTime.Unix())
	done := h.waitPhase("retry", v1alpha1.PhaseFinished)
	require.Equal(t, int32(2), done.Status.Attempt)
	recs, err = h.repo.History(h.ctx, uid)
	require.NoError(t, err)
	startedAt := recs[len(recs)-2].At
	require.False(t, startedAt.Before(failedAt.Add(3*time.Second)), "the retry did not start before it was due")
}

// TestPauseTimeoutStopsTheTask: a task paused longer than spec.pauseTimeout is stopped, with
// that reason.
func TestPauseTimeoutStopsTheTask(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("forgotten", "steps", `{"steps":100000,"interval":"10ms"}`, func(b *v1alpha1.BackgroundTask) {
		b.Spec.PauseTimeout = &metav1.Duration{Duration: 2 * time.Second}
	})
	h.waitPhase("forgotten", v1alpha1.PhaseRunning, hasProgress)
	h.patchSpec("forgotten", `{"state":"Paused"}`)
	h.waitPhase("forgotten", v1alpha1.PhasePaused)
	stopped := h.waitPhase("forgotten", v1alpha1.PhaseStopped)
	require.Contains(t, stopped.Status.Message, "pause timeout")
	row := h.waitRow(string(bt.UID), lifecycle.Stopped)
	require.Equal(t, lifecycle.ReasonPauseTimeout, row.Reason)
}

// TestMemoryBudgetKeepsOversizedTasksWaiting: 40 checksum tasks of 16 MiB blocks would take
// 640 MiB; with a 160 MiB budget at most 9 hold memory at a time, the others wait Pending and
// say why, and the process's heap grows by about the budget (the checksum type reuses block
// buffers across runs, and the Deployment sets GOMEMLIMIT to the container limit the budget is
// taken from, as this test does).
func TestMemoryBudgetKeepsOversizedTasksWaiting(t *testing.T) {
	h := newHarness(t)
	const budget = 160 << 20
	before := heap()
	limit := before + budget*10/6 // --memory-budget auto takes 60% of the limit
	previous := debug.SetMemoryLimit(limit)
	t.Cleanup(func() { debug.SetMemoryLimit(previous) })
	p := h.startOperator(operatorConfig{memoryBudget: budget})
	var peak, reserved atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if v := heap(); v > peak.Load() {
				peak.Store(v)
			}
			if v := p.op.Runner.Stats().MemoryInUse; v > reserved.Load() {
				reserved.Store(v)
			}
		}
	}()
	for i := range 40 {
		h.create(fmt.Sprintf("c%02d", i), "checksum", `{"blocks":2,"blockSize":16777216,"seed":1}`)
	}
	require.Eventually(t, func() bool {
		var list v1alpha1.BackgroundTaskList
		require.NoError(t, h.c.List(h.ctx, &list, client.InNamespace(h.ns)))
		for _, bt := range list.Items {
			if bt.Status.Phase == v1alpha1.PhasePending && strings.Contains(bt.Status.Message, "waiting for memory") {
				return true
			}
		}
		return false
	}, waitTimeout, 20*time.Millisecond, "the tasks beyond the budget wait Pending and say why")
	require.Eventually(t, func() bool { return h.countRows("FINISHED") == 40 }, 3*waitTimeout, 200*time.Millisecond)
	close(stop)
	<-sampled
	require.LessOrEqual(t, reserved.Load(), int64(budget), "never more reserved than the budget")
	grew := peak.Load() - before
	t.Logf("the heap grew by %d MiB at most (budget %d MiB, limit %d MiB above the start; unbounded, 40 runs would take 640 MiB)",
		grew>>20, budget>>20, (limit-before)>>20)
	require.Less(t, grew, limit-before+16<<20, "memory stays within the limit the budget is 60% of, not what the runs would take")
}

// heap is the memory of this process's Go heap in use (the operator runs in the test process).
// It is what the budget bounds; the resident set would also count the race detector's shadow
// memory, which grows with every byte the runs touch.
func heap() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
