package sharding_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
)

// TestEverySlotOnceWhenTheLeaderIsKilledAtTheSlot: three sharded replicas as processes, a
// schedule firing every 2 s, and the leader SIGKILLed at a slot. Every slot from the first to
// the last recorded has exactly one row (the slots of the leaderless seconds too: created late
// or missed, never left out), and every child belongs to a slot recorded created, named after it.
func TestEverySlotOnceWhenTheLeaderIsKilledAtTheSlot(t *testing.T) {
	w := newWorld(t)
	for _, r := range []string{"r-a", "r-b", "r-c"} {
		w.start(r)
	}
	ts := &v1alpha1.TaskSchedule{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "every-2s"},
		Spec: v1alpha1.TaskScheduleSpec{Schedule: "*/2 * * * * *", SuccessfulHistoryLimit: ptr.To[int32](1000),
			Template: v1alpha1.TaskTemplate{Spec: v1alpha1.BackgroundTaskSpec{TaskName: "noop", Params: &runtime.RawExtension{Raw: []byte(`{}`)}}}},
	}
	require.NoError(t, w.c.Create(w.ctx, ts))
	t.Cleanup(func() { _ = w.c.Delete(w.ctx, ts) })

	type row struct {
		slot    time.Time
		outcome string
		child   string
	}
	rows := func() []row {
		t.Helper()
		rs, err := w.db.Query(w.ctx, `SELECT slot, outcome, task_name FROM background_task_firings
			WHERE namespace = $1 AND schedule = $2 AND NOT manual ORDER BY slot`, w.ns, ts.Name)
		require.NoError(t, err)
		defer rs.Close()
		var out []row
		for rs.Next() {
			var r row
			require.NoError(t, rs.Scan(&r.slot, &r.outcome, &r.child))
			out = append(out, r)
		}
		require.NoError(t, rs.Err())
		return out
	}
	require.Eventually(t, func() bool { return len(rows()) >= 3 }, time.Minute, 100*time.Millisecond, "the schedule fires")

	var lease coordinationv1.Lease
	require.NoError(t, w.c.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: "taskpilot.tasks.taskpilot.dev"}, &lease))
	leader := controllers.LeaderIdentity(ptr.Deref(lease.Spec.HolderIdentity, ""))
	require.Contains(t, w.replicas, leader)
	slot := time.Now().Truncate(2 * time.Second).Add(2 * time.Second)
	time.Sleep(time.Until(slot))
	require.NoError(t, w.replicas[leader].Kill())
	t.Logf("killed the leader %s at slot %s", leader, slot.Format(time.TimeOnly))

	until := slot.Add(20 * time.Second)
	require.Eventually(t, func() bool {
		rs := rows()
		return len(rs) > 0 && !rs[len(rs)-1].slot.Before(until)
	}, 2*time.Minute, 200*time.Millisecond, "a new leader fires the slots after the kill")

	rs := rows()
	byName := map[string]row{}
	created := 0
	for i, r := range rs {
		if i > 0 {
			require.Equal(t, 2*time.Second, r.slot.Sub(rs[i-1].slot), "slot %s follows %s: none left out, none twice", r.slot, rs[i-1].slot)
		}
		if r.outcome == "created" {
			created++
			require.Equal(t, ts.Name+"-"+strconv.FormatInt(r.slot.Unix(), 10), r.child)
			byName[r.child] = r
		}
	}
	var children v1alpha1.BackgroundTaskList
	require.NoError(t, w.c.List(w.ctx, &children, client.InNamespace(w.ns), client.MatchingLabels{v1alpha1.LabelSchedule: ts.Name}))
	for _, bt := range children.Items {
		slotOf, err := strconv.ParseInt(bt.Labels[v1alpha1.LabelSlot], 10, 64)
		require.NoError(t, err)
		if time.Unix(slotOf, 0).After(rs[len(rs)-1].slot) {
			continue // created after the rows were read
		}
		_, ok := byName[bt.Name]
		require.True(t, ok, "child %s belongs to a slot recorded created", bt.Name)
	}
	t.Logf("%d slots, %d created, the leader killed at %s", len(rs), created, slot.Format(time.TimeOnly))
	missed := len(rs) - created
	require.LessOrEqual(t, missed, int((leaseDuration+10*time.Second)/(2*time.Second)),
		"only the slots of the leaderless seconds are missed (catchUp Skip runs the newest)")
}
