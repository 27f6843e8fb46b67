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
	got, lost, err := repo.RecordFirings(ctx, []Firing{missed, first})
	require.NoError(t, err)
	require.False(t, lost)
	require.Len(t, got, 2)
	require.NotZero(t, got[1].ID, "the rows written come back with their IDs")

	again := first
	again.Outcome, again.TaskName, again.RecordedBy = FiringMissed, "", "op-b"
	later := Firing{ScheduleUID: "s-uid", Namespace: "ns", Schedule: "nightly", Slot: slot.Add(time.Hour), Outcome: FiringSkipped,
		Reason: "Forbid", RecordedBy: "op-b"}
	got, lost, err = repo.RecordFirings(ctx, []Firing{again, later})
	require.NoError(t, err)
	require.True(t, lost, "the slot was recorded already")
	require.Empty(t, got, "and nothing after it is written: whoever won the slot acts, the loser looks again")

	book, err := repo.ScheduleBook(ctx, "s-uid")
	require.NoError(t, err)
	require.NotNil(t, book.Last)
	require.Equal(t, FiringCreated, book.Last.Outcome, "the first row stands")
	require.Equal(t, "op-a", book.Last.RecordedBy)
	require.True(t, slot.Equal(book.Last.Slot))
	require.Len(t, book.Unsettled, 1, "its child is still to be created")
	require.Equal(t, "nightly-1", book.Unsettled[0].TaskName)
	require.Nil(t, book.Revision)

	require.NoError(t, repo.SettleChild(ctx, book.Unsettled[0].ID, "child-uid"))
	book, err = repo.ScheduleBook(ctx, "s-uid")
	require.NoError(t, err)
	require.Empty(t, book.Unsettled)
	require.Equal(t, "child-uid", *book.Last.ChildUID)
	list, err := repo.Firings(ctx, "ns", "nightly", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, FiringCreated, list[0].Outcome, "newest first")

	book, err = repo.ScheduleBook(ctx, "other")
	require.NoError(t, err)
	require.Nil(t, book.Last)

	bad := Firing{ScheduleUID: "s-uid", Namespace: "ns", Schedule: "nightly", Slot: slot.Add(time.Hour), Outcome: FiringCreated}
	_, _, err = repo.RecordFirings(ctx, []Firing{bad})
	requirePgError(t, err, "23514", "background_task_firings_child")
}

// TestARefusedChildSettlesTheSlotMissed: a created slot whose child the API server refuses
// becomes missed, once; a settled row never changes again.
func TestARefusedChildSettlesTheSlotMissed(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	slot := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	got, _, err := repo.RecordFirings(ctx, []Firing{{ScheduleUID: "r-uid", Namespace: "ns", Schedule: "s", Slot: slot,
		Outcome: FiringCreated, TaskName: "s-1", RecordedBy: "op-a"}})
	require.NoError(t, err)
	require.NoError(t, repo.SettleRefused(ctx, got[0].ID, "Refused: no"))
	require.NoError(t, repo.SettleChild(ctx, got[0].ID, "late"), "a settled row is left as it is")
	book, err := repo.ScheduleBook(ctx, "r-uid")
	require.NoError(t, err)
	require.Empty(t, book.Unsettled)
	require.Equal(t, FiringMissed, book.Last.Outcome)
	require.Empty(t, book.Last.TaskName)
	require.Nil(t, book.Last.ChildUID)
	require.Equal(t, "Refused: no", book.Last.Reason)
}

// TestARevisionIsNeverOverwrittenByAnOlderView: the revision of a newer generation stands; a
// writer with an older one gets it back.
func TestARevisionIsNeverOverwrittenByAnOlderView(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	created := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	rev := ScheduleRevision{ScheduleUID: "v-uid", Namespace: "ns", Schedule: "s", Generation: 1, Expression: "0 0 * * *",
		EffectiveFrom: created}
	got, err := repo.Revise(ctx, rev)
	require.NoError(t, err)
	require.True(t, created.Equal(got.EffectiveFrom))

	edited := rev
	edited.Generation, edited.Expression, edited.EffectiveFrom = 2, "*/5 * * * *", created.Add(12*time.Hour)
	got, err = repo.Revise(ctx, edited)
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Generation)

	got, err = repo.Revise(ctx, rev) // a second leader's stale cache
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Generation, "the newer generation stands")
	require.Equal(t, "*/5 * * * *", got.Expression)
	book, err := repo.ScheduleBook(ctx, "v-uid")
	require.NoError(t, err)
	require.Equal(t, "*/5 * * * *", book.Revision.Expression)
}
