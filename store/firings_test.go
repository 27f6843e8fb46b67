package store

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFiringOutcomesMatchTheCheck: the outcome CHECK allows exactly FiringOutcomes.
func TestFiringOutcomesMatchTheCheck(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	var def string
	require.NoError(t, repo.db.WithContext(ctx).Raw(`SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conname = 'background_task_firings_outcome_check'`).Scan(&def).Error)
	var got, want []string
	for _, m := range regexp.MustCompile(`'([a-z]+)'`).FindAllStringSubmatch(def, -1) {
		got = append(got, m[1])
	}
	for _, o := range FiringOutcomes() {
		want = append(want, string(o))
	}
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, slices.Compact(got), def)
}

// TestASlotIsRecordedOnce: a slot's first row stands; recording it again (another operator, a
// retry after a crash) inserts nothing and says so.
func TestASlotIsRecordedOnce(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	slot := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	first := Firing{ScheduleUID: "s-uid", Namespace: "ns", Schedule: "nightly", Slot: slot, Outcome: FiringCreated,
		TaskName: "nightly-1", RecordedBy: "op-a"}
	missed := Firing{ScheduleUID: "s-uid", Namespace: "ns", Schedule: "nightly", Slot: slot.Add(-time.Hour), Outcome: FiringMissed,
		Reason: "Late", RecordedBy: "op-a"}
	got, err := repo.RecordFirings(ctx, []Firing{missed, first})
	require.NoError(t, err)
	require.Len(t, got, 2)

	again := first
	again.Outcome, again.TaskName, again.RecordedBy = FiringMissed, "", "op-b"
	got, err = repo.RecordFirings(ctx, []Firing{again})
	require.NoError(t, err)
	require.Empty(t, got, "the slot was recorded already")

	last, ok, err := repo.LastFiring(ctx, "s-uid")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, FiringCreated, last.Outcome, "the first row stands")
	require.Equal(t, "op-a", last.RecordedBy)
	require.True(t, slot.Equal(last.Slot))

	created, ok, err := repo.LastCreated(ctx, "s-uid")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "nightly-1", created.TaskName)
	list, err := repo.Firings(ctx, "ns", "nightly", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, FiringCreated, list[0].Outcome, "newest first")

	_, ok, err = repo.LastFiring(ctx, "other")
	require.NoError(t, err)
	require.False(t, ok)

	bad := Firing{ScheduleUID: "s-uid", Namespace: "ns", Schedule: "nightly", Slot: slot.Add(time.Hour), Outcome: FiringCreated}
	_, err = repo.RecordFirings(ctx, []Firing{bad})
	requirePgError(t, err, "23514", "background_task_firings_child")
}
