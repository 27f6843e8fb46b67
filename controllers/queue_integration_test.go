package controllers_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

func (h *harness) createQueue(name string, spec v1alpha1.TaskQueueSpec) *v1alpha1.TaskQueue {
	h.t.Helper()
	q := &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}, Spec: spec}
	require.NoError(h.t, h.c.Create(h.ctx, q))
	return q
}

func (h *harness) patchQueue(name, spec string) {
	h.t.Helper()
	q := &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}}
	require.NoError(h.t, h.c.Patch(h.ctx, q, client.RawPatch("application/merge-patch+json", []byte(`{"spec":`+spec+`}`))))
}

func inQueue(queue string, priority int32) func(*v1alpha1.BackgroundTask) {
	return func(b *v1alpha1.BackgroundTask) { b.Spec.Queue, b.Spec.Priority = queue, priority }
}

// startTimes reads when each task's current attempt started, from PostgreSQL.
func (h *harness) startTimes(names ...string) map[string]time.Time {
	h.t.Helper()
	out := map[string]time.Time{}
	for _, n := range names {
		var at time.Time
		require.NoError(h.t, h.sql.QueryRow(h.ctx, `SELECT start_time FROM background_tasks WHERE namespace = $1 AND name = $2`, h.ns, n).Scan(&at))
		out[n] = at
	}
	return out
}

// A queue's concurrency holds across two sharded replicas: never more than 2 of its tasks
// execute at once (counted inside the task type, in both replicas), and all of them run.
func TestAQueueLimitHoldsAcrossReplicas(t *testing.T) {
	h := newHarness(t)
	h.createQueue("reports", v1alpha1.TaskQueueSpec{Concurrency: 2})
	h.startOperator(operatorConfig{sharding: true, identity: "replica-a"})
	h.startOperator(operatorConfig{sharding: true, identity: "replica-b"})
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("report-%d", i)
		names = append(names, name)
		h.create(name, "steps", `{"steps":4,"interval":"50ms"}`, inQueue("reports", 0))
	}
	waiting := h.waitPhase(names[9], v1alpha1.PhasePending, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQueueWaiting))
	require.Contains(t, waiting.Status.Message, `queue "reports"`, "the status says what it waits for")
	for _, n := range names {
		h.waitPhase(n, v1alpha1.PhaseFinished)
	}
	require.Equal(t, int64(2), h.probes.maxRunning.Load(), "two at once, never more, across both replicas")
	require.Empty(t, h.probes.doubles())
	require.Eventually(t, func() bool {
		var q v1alpha1.TaskQueue
		require.NoError(t, h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "reports"}, &q))
		return q.Status.Running == 0 && q.Status.Pending == 0 && q.Status.AdmittedLastMinute == 10 &&
			meta.IsStatusConditionTrue(q.Status.Conditions, v1alpha1.ConditionReady)
	}, waitTimeout, 50*time.Millisecond, "the queue's status counts from PostgreSQL")
}

// A paused queue starts nothing; once resumed, its waiting tasks start highest priority first,
// first come first served within a priority.
func TestAPausedQueueThenPriorityOrder(t *testing.T) {
	h := newHarness(t)
	h.createQueue("imports", v1alpha1.TaskQueueSpec{Concurrency: 1, Paused: true})
	h.startOperator(operatorConfig{})
	order := []struct {
		name     string
		priority int32
	}{{"low-1", 0}, {"high-1", 5}, {"low-2", 0}, {"high-2", 5}, {"mid", 2}}
	for _, o := range order {
		h.create(o.name, "steps", `{"steps":2,"interval":"20ms"}`, inQueue("imports", o.priority))
		// First come, first served is by when a task began to wait: let each ask in turn.
		h.waitPhase(o.name, v1alpha1.PhasePending, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQueueWaiting))
	}
	paused := h.waitPhase("mid", v1alpha1.PhasePending, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQueueWaiting))
	require.Contains(t, paused.Status.Message, "is paused")
	h.requireStays("low-1", time.Second, func(bt *v1alpha1.BackgroundTask) bool { return bt.Status.Phase == v1alpha1.PhasePending },
		"a paused queue starts nothing")
	h.patchQueue("imports", `{"paused":false}`)
	for _, o := range order {
		h.waitPhase(o.name, v1alpha1.PhaseFinished)
	}
	starts := h.startTimes("low-1", "high-1", "low-2", "high-2", "mid")
	got := []string{"low-1", "high-1", "low-2", "high-2", "mid"}
	sort.Slice(got, func(i, j int) bool { return starts[got[i]].Before(starts[got[j]]) })
	require.Equal(t, []string{"high-1", "high-2", "mid", "low-1", "low-2"}, got)
}

// A queue paused with drain Pause parks its running tasks at their next pause point; they
// resume when it resumes. A task naming a queue that does not exist waits until it does.
func TestDrainAndAMissingQueue(t *testing.T) {
	h := newHarness(t)
	h.createQueue("q", v1alpha1.TaskQueueSpec{Concurrency: 3})
	h.startOperator(operatorConfig{})
	long := h.create("long", "steps", `{"steps":400,"interval":"50ms"}`, inQueue("q", 0))
	h.waitRow(string(long.UID), lifecycle.Running)
	h.patchQueue("q", `{"paused":true,"drain":"Pause"}`)
	h.waitRow(string(long.UID), lifecycle.Paused)
	h.patchQueue("q", `{"paused":false}`)
	h.waitRow(string(long.UID), lifecycle.Running)

	orphan := h.create("orphan", "steps", `{"steps":1,"interval":"10ms"}`, inQueue("nowhere", 0))
	bt := h.waitPhase("orphan", v1alpha1.PhasePending, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQueueWaiting))
	require.Contains(t, bt.Status.Message, "does not exist")
	h.createQueue("nowhere", v1alpha1.TaskQueueSpec{Concurrency: 1})
	h.waitRow(string(orphan.UID), lifecycle.Finished)
	h.patchSpec("long", `{"state":"Stopped"}`)
	h.waitPhase("long", v1alpha1.PhaseStopped)
}

// Two tenants share a queue of concurrency 4: 200 tasks of one, which began to wait first,
// then 10 of the other; the small tenant's tasks all start before the big tenant's 20th. (The
// queue is paused while they are created, so that all of them wait when it opens: first come,
// first served alone would start all 200 first.)
func TestFairnessBetweenTenants(t *testing.T) {
	h := newHarness(t)
	h.createQueue("shared", v1alpha1.TaskQueueSpec{Concurrency: 4, Paused: true, Fairness: &v1alpha1.QueueFairness{Key: "tenant"}})
	h.startOperator(operatorConfig{maxConcurrent: 300})
	tenant := func(name string) func(*v1alpha1.BackgroundTask) {
		return func(b *v1alpha1.BackgroundTask) { b.Labels = map[string]string{"tenant": name} }
	}
	var big, small []string
	for i := range 200 {
		big = append(big, fmt.Sprintf("big-%03d", i))
		h.create(big[i], "steps", `{"steps":2,"interval":"50ms"}`, inQueue("shared", 0), tenant("big"))
	}
	for i := range 10 {
		small = append(small, fmt.Sprintf("small-%d", i))
		h.create(small[i], "steps", `{"steps":2,"interval":"50ms"}`, inQueue("shared", 0), tenant("small"))
	}
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_tasks WHERE namespace = $1 AND queue_state = 'waiting'`,
			h.ns).Scan(&waiting))
		return waiting == 210
	}, waitTimeout, 50*time.Millisecond, "every task waits in the paused queue")
	h.patchQueue("shared", `{"paused":false}`)
	for _, n := range append(append([]string{}, small...), big...) {
		h.waitPhase(n, v1alpha1.PhaseFinished)
	}
	starts := h.startTimes(append(append([]string{}, small...), big...)...)
	var lastSmall time.Time
	for _, n := range small {
		if starts[n].After(lastSmall) {
			lastSmall = starts[n]
		}
	}
	before := 0
	for _, n := range big {
		if starts[n].Before(lastSmall) {
			before++
		}
	}
	require.Less(t, before, 20, "the small tenant's last task started after %d of the big tenant's", before)
	require.LessOrEqual(t, h.probes.maxRunning.Load(), int64(4))
}

// A rate limit of 5 starts a second with a burst of 2: in every second of admissions (the
// operator's clock, recorded with each admission) at most 2 + 5 tasks are admitted, and the
// tasks still all run.
func TestARateLimitSpacesTheStarts(t *testing.T) {
	h := newHarness(t)
	h.createQueue("paced", v1alpha1.TaskQueueSpec{Concurrency: 100,
		RateLimit: &v1alpha1.QueueRateLimit{Starts: 5, Period: &metav1.Duration{Duration: time.Second}, Burst: ptr.To[int32](2)}})
	h.startOperator(operatorConfig{})
	var names []string
	for i := range 15 {
		names = append(names, fmt.Sprintf("paced-%02d", i))
		h.create(names[i], "steps", `{"steps":1,"interval":"10ms"}`, inQueue("paced", 0))
	}
	for _, n := range names {
		h.waitPhase(n, v1alpha1.PhaseFinished)
	}
	rows, err := h.sql.Query(h.ctx, `SELECT queue_admitted_at FROM background_tasks WHERE namespace = $1 AND queue = 'paced' ORDER BY 1`, h.ns)
	require.NoError(t, err)
	var at []time.Time
	for rows.Next() {
		var a time.Time
		require.NoError(t, rows.Scan(&a))
		at = append(at, a)
	}
	require.NoError(t, rows.Err())
	require.Len(t, at, 15)
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		require.LessOrEqual(t, n, 7, "admissions in the second from %s", at[i].Format(time.StampMilli))
	}
	require.GreaterOrEqual(t, at[len(at)-1].Sub(at[0]), 2*time.Second, "15 starts at 5 a second after a burst of 2 take over 2 s")
}

// pausedUntil is judged by the operator's clock: a queue paused until an hour from now admits
// at once on an operator whose clock runs an hour and a minute ahead, and the queue's status
// says the pause ended.
func TestPausedUntilFollowsTheOperatorsClock(t *testing.T) {
	h := newHarness(t)
	until := metav1.NewTime(time.Now().Add(time.Hour))
	h.createQueue("window", v1alpha1.TaskQueueSpec{Concurrency: 1, Paused: true, PausedUntil: &until})
	h.startOperator(operatorConfig{clock: skewedClock{skew: time.Hour + time.Minute}})
	task := h.create("after-window", "steps", `{"steps":1,"interval":"10ms"}`, inQueue("window", 0))
	h.waitRow(string(task.UID), lifecycle.Finished)
	require.Eventually(t, func() bool {
		var q v1alpha1.TaskQueue
		require.NoError(t, h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "window"}, &q))
		c := meta.FindStatusCondition(q.Status.Conditions, v1alpha1.ConditionPaused)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "PauseEnded"
	}, waitTimeout, 50*time.Millisecond)
}

// queueState reads a task's place in its queue from PostgreSQL.
func (h *harness) queueState(uid string) string {
	h.t.Helper()
	var st string
	require.NoError(h.t, h.sql.QueryRow(h.ctx, `SELECT queue_state FROM background_tasks WHERE uid = $1`, uid).Scan(&st))
	return st
}

// A paused task set Running asks its full queue for a place; paused again before it gets one,
// it gives its request back, so a place that frees up goes to a task that wants it.
func TestAResumeTakenBackGivesItsRequestBack(t *testing.T) {
	h := newHarness(t)
	h.createQueue("one", v1alpha1.TaskQueueSpec{Concurrency: 1})
	h.startOperator(operatorConfig{})
	a := h.create("a", "steps", `{"steps":1000,"interval":"20ms"}`, inQueue("one", 0))
	h.waitRow(string(a.UID), lifecycle.Running)
	h.patchSpec("a", `{"state":"Paused"}`)
	h.waitRow(string(a.UID), lifecycle.Paused)
	b := h.create("b", "steps", `{"steps":1000,"interval":"20ms"}`, inQueue("one", 0))
	h.waitRow(string(b.UID), lifecycle.Running)
	h.patchSpec("a", `{"state":"Running"}`)
	require.Eventually(t, func() bool { return h.queueState(string(a.UID)) == "waiting" }, waitTimeout, 20*time.Millisecond)
	h.patchSpec("a", `{"state":"Paused"}`)
	require.Eventually(t, func() bool { return h.queueState(string(a.UID)) == "" }, waitTimeout, 20*time.Millisecond,
		"paused again, it gave its request back")
	c := h.create("c", "steps", `{"steps":2,"interval":"20ms"}`, inQueue("one", 0))
	h.patchSpec("b", `{"state":"Stopped"}`)
	h.waitRow(string(c.UID), lifecycle.Finished)
	require.Equal(t, "", h.queueState(string(a.UID)), "the paused task took no place")
	require.Equal(t, v1alpha1.PhasePaused, h.get("a").Status.Phase)
}

// A queue deleted while no operator ran loses its row when the next one comes to lead (it
// looks at every queue row then: no event will ever tell it of that deletion), so its tasks
// say the queue is missing rather than being admitted by a queue that is gone.
func TestAQueueDeletedWhileNobodyLedLosesItsRow(t *testing.T) {
	h := newHarness(t)
	h.createQueue("gone", v1alpha1.TaskQueueSpec{Concurrency: 2})
	rows := func() int {
		var n int
		require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_task_queues WHERE namespace = $1`, h.ns).Scan(&n))
		return n
	}
	first := h.startOperator(operatorConfig{leaderElect: true})
	require.Eventually(t, func() bool { return rows() == 1 }, waitTimeout, 20*time.Millisecond, "the leader writes the queue's row")
	first.stop()
	require.NoError(t, h.c.Delete(h.ctx, &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "gone"}}))
	h.startOperator(operatorConfig{leaderElect: true})
	require.Eventually(t, func() bool { return rows() == 0 }, waitTimeout, 20*time.Millisecond, "the new leader removes the row")
	task := h.create("orphaned", "steps", `{"steps":1,"interval":"10ms"}`, inQueue("gone", 0))
	bt := h.waitPhase("orphaned", v1alpha1.PhasePending, hasCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQueueWaiting))
	require.Contains(t, bt.Status.Message, "does not exist")
	require.Equal(t, "waiting", h.queueState(string(task.UID)))
}

// A run that was recorded Running before its task named a queue, adopted by another operator
// after the first stopped, asks the queue, waits for a place and resumes once admitted.
func TestARunAdoptedIntoAQueueResumesOnceAdmitted(t *testing.T) {
	h := newHarness(t)
	h.createQueue("late", v1alpha1.TaskQueueSpec{Concurrency: 1})
	first := h.startOperator(operatorConfig{})
	task := h.create("moving", "steps", `{"steps":40,"interval":"50ms"}`)
	h.waitRow(string(task.UID), lifecycle.Running)
	first.stop()
	h.patchSpec("moving", `{"queue":"late"}`)
	h.startOperator(operatorConfig{})
	h.waitRow(string(task.UID), lifecycle.Finished)
	require.Empty(t, h.probes.doubles())
}
