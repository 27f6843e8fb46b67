package controllers_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

func withItems(count, parallelism, maxRetries int32) func(*v1alpha1.BackgroundTask) {
	return func(b *v1alpha1.BackgroundTask) {
		b.Spec.Items = &v1alpha1.ItemsSpec{Count: ptr.To(count), Parallelism: parallelism, MaxRetries: maxRetries}
	}
}

// itemStates counts the task's items by state, from PostgreSQL.
func (h *harness) itemStates(uid string) map[string]int {
	h.t.Helper()
	rows, err := h.sql.Query(h.ctx, `SELECT state, count(*) FROM background_task_items WHERE task_uid = $1 GROUP BY state`, uid)
	require.NoError(h.t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(h.t, rows.Scan(&s, &n))
		out[s] = n
	}
	require.NoError(h.t, rows.Err())
	return out
}

// requireItemHistories checks every item's history is contiguous from seq 1, each transition
// starting where the previous ended, and ends in the item's state.
func (h *harness) requireItemHistories(uid string) {
	h.t.Helper()
	var broken int
	require.NoError(h.t, h.sql.QueryRow(h.ctx, `
		WITH t AS (
		  SELECT idx, seq, from_state, to_state,
		         lag(to_state) OVER (PARTITION BY idx ORDER BY seq) AS prev,
		         row_number() OVER (PARTITION BY idx ORDER BY seq) AS n
		  FROM background_task_item_transitions WHERE task_uid = $1)
		SELECT count(*) FROM t WHERE seq <> n OR (prev IS NOT NULL AND prev <> from_state)
		   OR (prev IS NULL AND from_state <> 'pending')`, uid).Scan(&broken))
	require.Zero(h.t, broken, "item histories are contiguous")
	var mismatched int
	require.NoError(h.t, h.sql.QueryRow(h.ctx, `
		SELECT count(*) FROM background_task_items i
		LEFT JOIN LATERAL (SELECT to_state FROM background_task_item_transitions t
		  WHERE t.task_uid = i.task_uid AND t.idx = i.idx ORDER BY seq DESC LIMIT 1) last ON true
		WHERE i.task_uid = $1 AND i.seq > 0 AND last.to_state <> i.state`, uid).Scan(&mismatched))
	require.Zero(h.t, mismatched, "each item's state is the end of its history")
}

// One object, ten thousand items: pause leaves none executing and resumes where it was; stop
// leaves the rest pending; a restart runs every item again. The status counts them.
func TestTenThousandItemsFollowTheirTasksLifecycle(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("mailing", "foreach", `{"each":"2ms"}`, withItems(10000, 32, 0))
	uid := string(bt.UID)

	h.waitPhase("mailing", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.Items != nil && b.Status.Items.Succeeded > 0
	})
	h.patchSpec("mailing", `{"state":"Paused"}`)
	h.waitPhase("mailing", v1alpha1.PhasePaused)
	paused := h.itemStates(uid)
	require.Zero(t, paused["running"], "the items in flight ended and were recorded before the pause")
	require.Positive(t, paused["pending"], "the pause came before the end: %v", paused)
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, paused, h.itemStates(uid), "no item runs while paused")
	require.Eventually(t, func() bool {
		s := h.get("mailing").Status.Items
		return s != nil && s.Succeeded == int64(paused["succeeded"]) && s.Pending == int64(paused["pending"])
	}, waitTimeout, 20*time.Millisecond, "a paused task's status counts what PostgreSQL holds")

	h.patchSpec("mailing", `{"state":"Running"}`)
	done := h.waitPhase("mailing", v1alpha1.PhaseFinished)
	require.Equal(t, &v1alpha1.ItemsStatus{Total: 10000, Succeeded: 10000}, done.Status.Items)
	require.JSONEq(t, `{"items":10000}`, string(done.Status.Result.Raw))
	require.Equal(t, map[string]int{"succeeded": 10000}, h.itemStates(uid))
	var reruns int
	require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_task_items WHERE task_uid = $1 AND executions <> 1`, uid).Scan(&reruns))
	require.Zero(t, reruns, "a pause interrupts no item: each ran once")
	h.requireItemHistories(uid)
	require.Equal(t, []string{"->PENDING@0", "PENDING>RUNNING@1", "RUNNING>PAUSED@1", "PAUSED>RUNNING@1", "RUNNING>FINISHED@1"}, h.history(uid))

	h.patchSpec("mailing", `{"restartGeneration":1}`)
	h.waitPhase("mailing", v1alpha1.PhaseFinished, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Attempt == 2 })
	require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_task_items WHERE task_uid = $1 AND executions <> 2`, uid).Scan(&reruns))
	require.Zero(t, reruns, "a restart runs every item again")
	h.requireItemHistories(uid)

	stopped := h.create("stopped", "foreach", `{"each":"5ms"}`, withItems(10000, 8, 0))
	h.waitPhase("stopped", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.Items != nil && b.Status.Items.Succeeded > 0
	})
	h.patchSpec("stopped", `{"state":"Stopped"}`)
	h.waitPhase("stopped", v1alpha1.PhaseStopped)
	s := h.itemStates(string(stopped.UID))
	require.Zero(t, s["running"]+s["failed"], "a stop interrupts items, it fails none: %v", s)
	require.Equal(t, 10000, s["pending"]+s["succeeded"])
	h.requireItemHistories(string(stopped.UID))
}

// Items that fail spend their own retries, then fail the task, whose status names them;
// retry-failed (a restart to spec.items.retryFailedGeneration) runs those items only.
func TestRetryFailedRunsTheFailedItemsOnly(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	bt := h.create("import", "foreach", `{"fail":[3,17],"failUntilAttempt":2}`, withItems(50, 4, 1))
	uid := string(bt.UID)

	failed := h.waitPhase("import", v1alpha1.PhaseFailed)
	require.Equal(t, lifecycle.ReasonError, findCondition(failed, v1alpha1.ConditionReady).Reason)
	require.Contains(t, failed.Status.Message, "2 of 50 items failed, e.g. item 3: item 3 fails as params.fail says; item 17:")
	require.Equal(t, &v1alpha1.ItemsStatus{Total: 50, Succeeded: 48, Failed: 2, FirstFailures: []v1alpha1.ItemFailure{
		{Index: 3, Error: "item 3 fails as params.fail says"}, {Index: 17, Error: "item 17 fails as params.fail says"},
	}}, failed.Status.Items)

	h.patchSpec("import", `{"restartGeneration":1,"items":{"retryFailedGeneration":1}}`)
	done := h.waitPhase("import", v1alpha1.PhaseFinished, func(b *v1alpha1.BackgroundTask) bool { return b.Status.Attempt == 2 })
	require.Equal(t, &v1alpha1.ItemsStatus{Total: 50, Succeeded: 50}, done.Status.Items)
	executions := func(idx int) int {
		var n int
		require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT executions FROM background_task_items WHERE task_uid = $1 AND idx = $2`, uid, idx).Scan(&n))
		return n
	}
	require.Equal(t, 1, executions(0), "a succeeded item is not run again")
	require.Equal(t, 3, executions(3), "two executions in attempt 1 (one retry), one in attempt 2")
	h.requireItemHistories(uid)
}

// A task type with items needs spec.items, and one without refuses them: both fail at once,
// not retried, saying what to change.
func TestItemsAndTheirTaskTypeMustAgree(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	h.create("no-items", "foreach", `{}`)
	h.create("not-an-items-type", "noop", ``, withItems(3, 1, 0))
	for name, msg := range map[string]string{
		"no-items":          `task type "foreach" runs items: set spec.items`,
		"not-an-items-type": `task type "noop" does not run items: remove spec.items`,
	} {
		bt := h.waitPhase(name, v1alpha1.PhaseFailed)
		require.Equal(t, lifecycle.ReasonInvalidParams, findCondition(bt, v1alpha1.ConditionReady).Reason, name)
		require.Contains(t, bt.Status.Message, msg)
	}
}

// An operator that goes away mid-run leaves its items to the next: every item ends succeeded
// exactly once, histories stay contiguous.
func TestItemsContinueOnTheNextOperator(t *testing.T) {
	h := newHarness(t)
	first := h.startOperator(operatorConfig{identity: "first"})
	bt := h.create("reindex", "foreach", `{"each":"3ms"}`, withItems(5000, 16, 0))
	uid := string(bt.UID)
	h.waitPhase("reindex", v1alpha1.PhaseRunning, func(b *v1alpha1.BackgroundTask) bool {
		return b.Status.Items != nil && b.Status.Items.Succeeded > 200
	})
	first.stop()
	before := h.itemStates(uid)
	require.Less(t, before["succeeded"], 5000, "stopped mid-run: %v", before)

	h.startOperator(operatorConfig{identity: "second"})
	done := h.waitPhase("reindex", v1alpha1.PhaseFinished)
	require.Equal(t, int64(5000), done.Status.Items.Succeeded)
	var twice int
	require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM (SELECT idx FROM background_task_item_transitions
		WHERE task_uid = $1 AND to_state = 'succeeded' GROUP BY idx HAVING count(*) > 1) twice`, uid).Scan(&twice))
	require.Zero(t, twice, "each item succeeded once")
	h.requireItemHistories(uid)
	var owners int
	require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(DISTINCT owner_epoch) FROM background_task_item_transitions
		WHERE task_uid = $1 AND to_state = 'succeeded'`, uid).Scan(&owners))
	require.Equal(t, 2, owners, fmt.Sprintf("both operators ran items (%v before the hand-over)", before))
}
