package controllers_test

import (
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

func (h *harness) createSchedule(name, expr, taskName, params string, mutate ...func(*v1alpha1.TaskSchedule)) *v1alpha1.TaskSchedule {
	h.t.Helper()
	ts := &v1alpha1.TaskSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: v1alpha1.TaskScheduleSpec{Schedule: expr, Template: v1alpha1.TaskTemplate{
			Metadata: v1alpha1.TaskTemplateMetadata{Labels: map[string]string{"team": "reports"}},
			Spec:     v1alpha1.BackgroundTaskSpec{TaskName: taskName, Params: &runtime.RawExtension{Raw: []byte(params)}},
		}},
	}
	for _, m := range mutate {
		m(ts)
	}
	require.NoError(h.t, h.c.Create(h.ctx, ts))
	return ts
}

func (h *harness) firings(ts *v1alpha1.TaskSchedule) []store.Firing {
	h.t.Helper()
	list, err := h.repo.Firings(h.ctx, ts.Namespace, ts.Name, 1000)
	require.NoError(h.t, err)
	sort.Slice(list, func(i, j int) bool { return list[i].Slot.Before(list[j].Slot) })
	return list
}

func (h *harness) children(ts *v1alpha1.TaskSchedule) []v1alpha1.BackgroundTask {
	h.t.Helper()
	var list v1alpha1.BackgroundTaskList
	require.NoError(h.t, h.c.List(h.ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{v1alpha1.LabelSchedule: ts.Name}))
	return list.Items
}

// everySlot is catchUp All without a practical bound: tests that check every slot's outcome use
// it, since on a loaded machine (make test runs packages side by side) an operator may get to a
// 2 s slot only after the next one passed, and Skip then rightly records the older one missed.
func everySlot() *v1alpha1.CatchUp {
	return &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll, MaxRuns: ptr.To[int32](1000)}
}

func count(firings []store.Firing, outcome store.FiringOutcome) int {
	n := 0
	for _, f := range firings {
		if f.Outcome == outcome {
			n++
		}
	}
	return n
}

// TestEverySlotFiresOnceWithTwoFiringOperators: two operators that both fire schedules (no
// leader election: both lead, the split brain) fire every slot exactly once: one row per slot,
// no slot left out, one child per created slot, named after it.
func TestEverySlotFiresOnceWithTwoFiringOperators(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("every-2s", "*/2 * * * * *", "countdown", `{"from":1,"interval":"10ms"}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.SuccessfulHistoryLimit = ptr.To[int32](100)
		s.Spec.CatchUp = everySlot()
		s.Spec.Template.Metadata.Labels["tasks.taskpilot.dev/shard"] = "elsewhere"
	})
	require.Eventually(t, func() bool { return count(h.firings(ts), store.FiringCreated) >= 5 }, 60*time.Second, 100*time.Millisecond)

	firings := h.firings(ts)
	for i, f := range firings {
		require.Equal(t, store.FiringCreated, f.Outcome, "slot %s: %s", f.Slot, f.Reason)
		require.Equal(t, ts.Name+"-"+itoa(f.Slot.Unix()), f.TaskName, "the child is named after its slot")
		if i > 0 {
			require.Equal(t, 2*time.Second, f.Slot.Sub(firings[i-1].Slot), "no slot left out, none twice")
		}
	}
	byName := map[string]v1alpha1.BackgroundTask{}
	for _, bt := range h.children(ts) {
		byName[bt.Name] = bt
	}
	for _, f := range firings {
		bt, ok := byName[f.TaskName]
		require.True(t, ok, "slot %s created %s", f.Slot, f.TaskName)
		require.Equal(t, "reports", bt.Labels["team"], "the template's labels")
		require.NotContains(t, bt.Labels, "tasks.taskpilot.dev/shard", "the operator's labels are not the template's to set")
		require.Equal(t, itoa(f.Slot.Unix()), bt.Labels[v1alpha1.LabelSlot])
		require.True(t, metav1.IsControlledBy(&bt, h.getSchedule(ts.Name)))
	}
	require.LessOrEqual(t, len(byName), len(firings)+1, "no child without its slot's row (one may be on its way)")

	require.Eventually(t, func() bool {
		cur := h.getSchedule(ts.Name)
		ready := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionReady)
		return cur.Status.LastScheduleTime != nil && cur.Status.NextScheduleTime != nil && ready != nil &&
			ready.Status == metav1.ConditionTrue && cur.Status.NextScheduleTime.After(cur.Status.LastScheduleTime.Time)
	}, waitTimeout, 50*time.Millisecond, "status shows the last and next slot")
}

// TestForbidSkipsAndReplaceStops: with a run still active, Forbid records the slot skipped and
// creates nothing; Replace stops the active run, then creates the slot's.
func TestForbidSkipsAndReplaceStops(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	long := `{"duration":"1h","tick":"100ms"}`
	forbid := h.createSchedule("forbid", "*/2 * * * * *", "sleep", long, func(s *v1alpha1.TaskSchedule) {
		s.Spec.ConcurrencyPolicy = v1alpha1.ConcurrencyForbid
		s.Spec.CatchUp = everySlot() // a slot late under load is skipped, not missed
	})
	replace := h.createSchedule("replace", "*/2 * * * * *", "sleep", long, func(s *v1alpha1.TaskSchedule) {
		s.Spec.ConcurrencyPolicy = v1alpha1.ConcurrencyReplace
		s.Spec.FailedHistoryLimit = ptr.To[int32](10) // keep the stopped ones to look at
		s.Spec.CatchUp = everySlot()                  // a slot late under load replaces, not missed
	})
	require.Eventually(t, func() bool { return count(h.firings(forbid), store.FiringSkipped) >= 2 }, 60*time.Second, 100*time.Millisecond)
	firings := h.firings(forbid)
	require.Equal(t, 1, count(firings, store.FiringCreated), "one run: %+v", firings)
	require.Equal(t, store.FiringCreated, firings[0].Outcome)
	for _, f := range firings[1:] {
		require.Equal(t, store.FiringSkipped, f.Outcome)
		require.Contains(t, f.Reason, firings[0].TaskName+" still active (concurrencyPolicy Forbid)")
	}
	require.Len(t, h.children(forbid), 1)

	require.Eventually(t, func() bool { return count(h.firings(replace), store.FiringReplaced) >= 2 }, 60*time.Second, 100*time.Millisecond)
	firings = h.firings(replace)
	require.Equal(t, store.FiringCreated, firings[0].Outcome)
	first := h.waitPhase(firings[0].TaskName, v1alpha1.PhaseStopped)
	require.Equal(t, v1alpha1.DesiredStopped, first.Spec.State, "replaced: stopped as a user would")
	for i, f := range firings[1:] {
		require.Equal(t, store.FiringReplaced, f.Outcome)
		require.Contains(t, f.Reason, "stopped "+firings[i].TaskName)
	}
	require.Eventually(t, func() bool {
		active := 0
		for _, bt := range h.children(replace) {
			if bt.Spec.State != v1alpha1.DesiredStopped {
				active++
			}
		}
		require.LessOrEqual(t, active, 1, "one run at a time")
		return active == 1 // the newest slot's, created once the run it replaced ended
	}, waitTimeout, 50*time.Millisecond)
}

// TestHistoryLimitsDeleteOldChildren: ended children past the limits are deleted, their slots'
// rows and histories stay.
func TestHistoryLimitsDeleteOldChildren(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("trimmed", "* * * * * *", "countdown", `{"from":1,"interval":"10ms"}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.SuccessfulHistoryLimit = ptr.To[int32](2)
	})
	require.Eventually(t, func() bool { return count(h.firings(ts), store.FiringCreated) >= 6 }, 60*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		finished := 0
		for _, bt := range h.children(ts) {
			if bt.Status.Phase == v1alpha1.PhaseFinished {
				finished++
			}
		}
		return finished <= 2
	}, waitTimeout, 100*time.Millisecond, "at most 2 finished children kept")
	var rows int
	require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_tasks WHERE name LIKE 'trimmed-%' AND status = 'FINISHED'`).Scan(&rows))
	require.GreaterOrEqual(t, rows, 4, "the deleted children's records stay")
}

// TestAnInvalidScheduleSaysWhy: an expression or zone that does not parse shows in Ready.
func TestAnInvalidScheduleSaysWhy(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	h.createSchedule("bad", "61 * * * *", "countdown", `{"from":1}`)
	require.Eventually(t, func() bool {
		ready := meta.FindStatusCondition(h.getSchedule("bad").Status.Conditions, v1alpha1.ConditionReady)
		return ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == "InvalidSchedule"
	}, waitTimeout, 50*time.Millisecond)
}

func (h *harness) getSchedule(name string) *v1alpha1.TaskSchedule {
	h.t.Helper()
	ts := &v1alpha1.TaskSchedule{}
	require.NoError(h.t, h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, ts))
	return ts
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRunNowCreatesOneChildPerRequest: the run-now annotation creates one child per request
// time, even while the schedule is suspended, recorded as a manual firing, and is removed once
// looked at; the same request time asked again creates nothing more.
func TestRunNowCreatesOneChildPerRequest(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("yearly", "0 0 1 1 *", "countdown", `{"from":1,"interval":"10ms"}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.Suspend = true
	})
	request := func(at time.Time) {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.AnnotationRunNow, at.UTC().Format(time.RFC3339))
		require.NoError(t, h.c.Patch(h.ctx, h.getSchedule(ts.Name), client.RawPatch(types.MergePatchType, []byte(patch))))
		require.Eventually(t, func() bool {
			_, pending := h.getSchedule(ts.Name).Annotations[v1alpha1.AnnotationRunNow]
			return !pending
		}, waitTimeout, 20*time.Millisecond, "the request is removed once looked at")
	}
	first := time.Now().Truncate(time.Second)
	request(first)
	name := ts.Name + "-manual-" + itoa(first.UnixMilli())
	done := h.waitPhase(name, v1alpha1.PhaseFinished)
	require.Equal(t, "true", done.Labels[v1alpha1.LabelManual])
	request(first) // the same request again
	second := first.Add(time.Minute)
	request(second)
	h.waitPhase(ts.Name+"-manual-"+itoa(second.UnixMilli()), v1alpha1.PhaseFinished)

	firings := h.firings(ts)
	require.Len(t, firings, 2, "one firing per request time: %+v", firings)
	for _, f := range firings {
		require.True(t, f.Manual)
		require.Equal(t, store.FiringCreated, f.Outcome)
		require.NotNil(t, f.ChildUID, "the row records its child")
	}
	require.Len(t, h.children(ts), 2)
}
