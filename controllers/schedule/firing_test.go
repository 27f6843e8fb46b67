package schedule

import (
	"fmt"
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
		active []string // children of earlier slots, still running
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
			var children []scheduledChild
			for _, name := range tc.active {
				children = append(children, scheduledChild{Name: name, Slot: slot.Add(-24 * time.Hour), Active: true})
			}
			plan, wait := planFirings(firingInput{Schedule: "nightly", Slots: tc.slots, Now: tc.now, Spec: tc.spec, Children: children, JitterSeed: "uid"})
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

// TestAHeldBackSlotHoldsBackTheSlotsAfterIt: with a jitter wider than the gap between slots, a
// slot whose jitter has not passed holds back the later slots whose jitter has, so slots are
// recorded oldest first and none is left out (the next look starts after the newest recorded).
func TestAHeldBackSlotHoldsBackTheSlotsAfterIt(t *testing.T) {
	s0 := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	s1 := s0.Add(4 * time.Second)
	spec := v1alpha1.TaskScheduleSpec{Jitter: &metav1.Duration{Duration: 10 * time.Second}}
	seed := ""
	for i := 0; seed == ""; i++ { // a schedule whose first slot draws a later start than its second
		if s := fmt.Sprint("uid-", i); jitterOf(spec.Jitter, s, s0) > 4*time.Second+jitterOf(spec.Jitter, s, s1) {
			seed = s
		}
	}
	j0, j1 := jitterOf(spec.Jitter, seed, s0), jitterOf(spec.Jitter, seed, s1)
	now := s1.Add(j1) // s1 is due, s0 is not yet
	require.True(t, now.Before(s0.Add(j0)))
	plan, wait := planFirings(firingInput{Schedule: "s", Slots: []time.Time{s0, s1}, Now: now, Spec: spec, JitterSeed: seed})
	require.Empty(t, plan, "s1 waits for s0")
	require.Equal(t, s0.Add(j0).Sub(now), wait, "look again when s0 is due")

	plan, _ = planFirings(firingInput{Schedule: "s", Slots: []time.Time{s0, s1}, Now: s0.Add(j0), Spec: spec, JitterSeed: seed})
	require.Len(t, plan, 2, "both, in slot order")
	require.Equal(t, s0, plan[0].Slot)
	require.Equal(t, s1, plan[1].Slot)
}

// TestASlotsOwnChildIsNeverReplaced: a slot whose child exists already (created by a look that
// stopped before recording it) records it created; Replace stops only earlier slots' runs, never
// the slot's own child, and Forbid does not count it against its own slot.
func TestASlotsOwnChildIsNeverReplaced(t *testing.T) {
	slot := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	own := childName("s", slot)
	older := scheduledChild{Name: "s-older", Slot: slot.Add(-time.Hour), Active: true}
	for _, policy := range []v1alpha1.ConcurrencyPolicy{v1alpha1.ConcurrencyReplace, v1alpha1.ConcurrencyForbid, v1alpha1.ConcurrencyAllow} {
		plan, _ := planFirings(firingInput{Schedule: "s", Slots: []time.Time{slot}, Now: slot.Add(time.Second),
			Spec:     v1alpha1.TaskScheduleSpec{ConcurrencyPolicy: policy},
			Children: []scheduledChild{older, {Name: own, Slot: slot, Active: true}}, JitterSeed: "uid"})
		require.Len(t, plan, 1)
		require.Equal(t, store.FiringCreated, plan[0].Outcome, "%s: %s", policy, plan[0].Reason)
		require.Equal(t, own, plan[0].Child)
		require.True(t, plan[0].Exists)
		require.Empty(t, plan[0].Stop, "%s: nothing is stopped", policy)
	}
	// Without its own child, Replace stops the earlier run only; a run-now child of the same
	// second is no slot's child.
	plan, _ := planFirings(firingInput{Schedule: "s", Slots: []time.Time{slot}, Now: slot.Add(time.Second),
		Spec:     v1alpha1.TaskScheduleSpec{ConcurrencyPolicy: v1alpha1.ConcurrencyReplace},
		Children: []scheduledChild{older, {Name: "s-manual-1", Slot: slot, Active: true, Manual: true}}, JitterSeed: "uid"})
	require.Equal(t, store.FiringReplaced, plan[0].Outcome)
	require.Equal(t, []string{"s-older"}, plan[0].Stop)
	require.False(t, plan[0].Exists)
}

// TestARefusedTemplateMissesTheSlotsThatWouldCreate: while the API server refuses the template,
// a slot that would create a child is missed with the refusal; a skipped one stays skipped.
func TestARefusedTemplateMissesTheSlotsThatWouldCreate(t *testing.T) {
	slot := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	plan, _ := planFirings(firingInput{Schedule: "s", Slots: []time.Time{slot, slot.Add(time.Hour)}, Now: slot.Add(time.Hour),
		Spec:    v1alpha1.TaskScheduleSpec{CatchUp: &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll}},
		Refused: "metadata.labels: Invalid value", JitterSeed: "uid"})
	require.Len(t, plan, 2)
	for _, f := range plan {
		require.Equal(t, store.FiringMissed, f.Outcome)
		require.Equal(t, "Refused: the API server refuses the template's BackgroundTask: metadata.labels: Invalid value", f.Reason)
		require.Empty(t, f.Child)
	}
	plan, _ = planFirings(firingInput{Schedule: "s", Slots: []time.Time{slot}, Now: slot, Refused: "no",
		Spec: v1alpha1.TaskScheduleSpec{Suspend: true}})
	require.Equal(t, store.FiringSkipped, plan[0].Outcome)
}
