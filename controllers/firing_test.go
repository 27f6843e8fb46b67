package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// TestPlanFirings is the schedule policy as a table: the slots that passed since the last
// recorded one (here: hourly, the operators down for 3 hours), the spec and the active children
// go in; each slot's outcome comes out.
func TestPlanFirings(t *testing.T) {
	slot := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	hourly := []time.Time{slot, slot.Add(time.Hour), slot.Add(2 * time.Hour)} // passed while down
	newest := hourly[2]
	type want struct {
		outcome store.FiringOutcome
		reason  string // a part of it
	}
	created := want{outcome: store.FiringCreated}
	missed := func(why string) want { return want{store.FiringMissed, why} }
	tests := []struct {
		name   string
		spec   v1alpha1.TaskScheduleSpec
		slots  []time.Time
		now    time.Time
		active []string
		want   []want
		stop   []string
	}{
		{name: "on time: created", slots: hourly[2:], now: newest.Add(50 * time.Millisecond), want: []want{created}},
		{name: "Skip after 3 h down: the slot of now runs, the passed ones are missed", slots: hourly, now: newest.Add(5 * time.Second),
			want: []want{missed("late, past its starting deadline"), missed("late, past its starting deadline"), created}},
		{name: "Skip: a slot later than 60 s is missed", slots: hourly, now: newest.Add(2 * time.Minute),
			want: []want{missed("late, past its starting deadline"), missed("late, past its starting deadline"), missed("past its starting deadline of 1m0s")}},
		{name: "Skip with a longer starting deadline", spec: v1alpha1.TaskScheduleSpec{StartingDeadlineSeconds: ptr.To[int64](300)},
			slots: hourly, now: newest.Add(2 * time.Minute), want: []want{missed("late, past its starting deadline"), missed("late, past its starting deadline"), created}},
		{name: "Latest: the newest passed slot runs however late", spec: v1alpha1.TaskScheduleSpec{CatchUp: &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpLatest}},
			slots: hourly, now: newest.Add(50 * time.Minute), want: []want{missed("catchUp Latest"), missed("catchUp Latest"), created}},
		{name: "All: every passed slot, oldest first", spec: v1alpha1.TaskScheduleSpec{CatchUp: &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll}},
			slots: hourly, now: newest.Add(50 * time.Minute), want: []want{created, created, created}},
		{name: "All with maxRuns 2: the newest two", spec: v1alpha1.TaskScheduleSpec{CatchUp: &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll, MaxRuns: ptr.To[int32](2)}},
			slots: hourly, now: newest.Add(50 * time.Minute), want: []want{missed("at most the newest 2"), created, created}},
		{name: "All within a starting deadline of 2 h", spec: v1alpha1.TaskScheduleSpec{CatchUp: &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll},
			StartingDeadlineSeconds: ptr.To[int64](7200)},
			slots: hourly, now: newest.Add(50 * time.Minute), want: []want{missed("past its starting deadline"), created, created}},
		{name: "suspended: every slot skipped", spec: v1alpha1.TaskScheduleSpec{Suspend: true}, slots: hourly, now: newest,
			want: []want{{store.FiringSkipped, "Suspended"}, {store.FiringSkipped, "Suspended"}, {store.FiringSkipped, "Suspended"}}},
		{name: "Forbid with a run active: skipped", spec: v1alpha1.TaskScheduleSpec{ConcurrencyPolicy: v1alpha1.ConcurrencyForbid},
			slots: hourly[2:], now: newest, active: []string{"nightly-1"}, want: []want{{store.FiringSkipped, "nightly-1 still active"}}},
		{name: "Forbid with All: the first catch-up run forbids the next", spec: v1alpha1.TaskScheduleSpec{ConcurrencyPolicy: v1alpha1.ConcurrencyForbid,
			CatchUp: &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll}},
			slots: hourly[1:], now: newest, want: []want{created, {store.FiringSkipped, "still active"}}},
		{name: "Allow with a run active: created beside it", slots: hourly[2:], now: newest, active: []string{"nightly-1"}, want: []want{created}},
		{name: "Replace with a run active: stop it, then create", spec: v1alpha1.TaskScheduleSpec{ConcurrencyPolicy: v1alpha1.ConcurrencyReplace},
			slots: hourly[2:], now: newest, active: []string{"nightly-1"}, want: []want{{store.FiringReplaced, "stopped nightly-1"}}, stop: []string{"nightly-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, wait := planFirings(firingInput{Schedule: "nightly", Slots: tc.slots, Now: tc.now, Spec: tc.spec, Active: tc.active, JitterSeed: "uid"})
			require.Zero(t, wait)
			require.Len(t, plan, len(tc.want))
			for i, w := range tc.want {
				require.Equal(t, tc.slots[i], plan[i].Slot)
				require.Equal(t, w.outcome, plan[i].Outcome, plan[i].Reason)
				require.Contains(t, plan[i].Reason, w.reason)
				if w.outcome.Created() {
					require.Equal(t, childName("nightly", tc.slots[i]), plan[i].Child, "the child's name is the slot's")
				} else {
					require.Empty(t, plan[i].Child)
				}
			}
			if tc.stop != nil {
				require.Equal(t, tc.stop, plan[len(plan)-1].Stop)
			}
		})
	}
}

// TestJitterHoldsTheSlotBack: a slot waits for its jitter, the same in every operator, within
// [0, jitter).
func TestJitterHoldsTheSlotBack(t *testing.T) {
	slot := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	spec := v1alpha1.TaskScheduleSpec{Jitter: &metav1.Duration{Duration: time.Minute}}
	j := jitterOf(spec.Jitter, "uid-1", slot)
	require.GreaterOrEqual(t, j, time.Duration(0))
	require.Less(t, j, time.Minute)
	require.Equal(t, j, jitterOf(spec.Jitter, "uid-1", slot), "the same in every operator")
	differs := false
	for i := range 20 {
		differs = differs || jitterOf(spec.Jitter, "uid-1", slot.Add(time.Duration(i)*time.Hour)) != j
	}
	require.True(t, differs, "slots spread")

	plan, wait := planFirings(firingInput{Schedule: "s", Slots: []time.Time{slot}, Now: slot.Add(j - time.Millisecond), Spec: spec, JitterSeed: "uid-1"})
	require.Empty(t, plan, "not due before its jitter")
	require.Equal(t, time.Millisecond, wait)
	plan, _ = planFirings(firingInput{Schedule: "s", Slots: []time.Time{slot}, Now: slot.Add(j), Spec: spec, JitterSeed: "uid-1"})
	require.Len(t, plan, 1)
	require.Equal(t, store.FiringCreated, plan[0].Outcome)
}

func TestDroppedSlotsAreCounted(t *testing.T) {
	slot := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	plan, _ := planFirings(firingInput{Schedule: "s", Slots: []time.Time{slot, slot.Add(time.Second)}, Dropped: 9800, Now: slot.Add(time.Second)})
	require.Equal(t, store.FiringMissed, plan[0].Outcome)
	require.True(t, strings.Contains(plan[0].Reason, "and 9800 earlier slot(s)"), plan[0].Reason)
}
