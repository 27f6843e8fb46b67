package controllers_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
