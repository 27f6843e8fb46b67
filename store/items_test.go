package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// itemHistory returns the to_state of every transition of item idx, in seq order, and checks
// the seqs are 1..n.
func itemHistory(t *testing.T, repo *Repository, uid string, idx int) []string {
	t.Helper()
	var rows []struct {
		Seq     int
		ToState string
	}
	require.NoError(t, repo.db.Raw(`SELECT seq, to_state FROM background_task_item_transitions
		WHERE task_uid = ? AND idx = ? ORDER BY seq`, uid, idx).Scan(&rows).Error)
	out := make([]string, len(rows))
	for i, r := range rows {
		require.Equal(t, i+1, r.Seq, "item %d's history has no gap", idx)
		out[i] = r.ToState
	}
	return out
}

func TestItemsAreClaimedOnceAndRetriedAsTheirPlanSays(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	createTask(t, repo, "u1", "ns", "bulk", "noop")
	plan := ItemPlan{Count: 10, MaxRetries: 1}

	c, err := repo.BeginItems(ctx, "u1", owner1, 1, plan)
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 10}, c)
	c, err = repo.BeginItems(ctx, "u1", owner1, 1, plan)
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 10}, c, "seeding twice seeds once")

	got, err := repo.ClaimItems(ctx, "u1", owner1, 1, 4)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2, 3}, indexes(got))
	rest, err := repo.ClaimItems(ctx, "u1", owner1, 1, 100)
	require.NoError(t, err)
	require.Equal(t, []int{4, 5, 6, 7, 8, 9}, indexes(rest), "a claimed item is not claimed again")

	outcomes := []ItemOutcome{
		{Index: 0, Execution: 1, Outcome: OutcomeSucceeded},
		{Index: 1, Execution: 1, Outcome: OutcomeFailed, Error: "boom"},       // retried once
		{Index: 2, Execution: 1, Outcome: OutcomeInterrupted},                 // back to pending
		{Index: 3, Execution: 1, Outcome: OutcomeFailed, Error: "bad\x00row"}, // NUL is dropped
	}
	failed, err := repo.FinishItems(ctx, "u1", owner1, 1, 1, outcomes)
	require.NoError(t, err)
	require.Empty(t, failed, "each failure has a retry left")
	_, err = repo.FinishItems(ctx, "u1", owner1, 1, 1, outcomes[:1])
	require.ErrorIs(t, err, ErrFenced, "an item no longer running that execution is not finished twice")

	again, err := repo.ClaimItems(ctx, "u1", owner1, 1, 100)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3}, indexes(again))
	require.Equal(t, 2, again[0].Execution)
	failed, err = repo.FinishItems(ctx, "u1", owner1, 1, 1, []ItemOutcome{
		{Index: 1, Execution: 2, Outcome: OutcomeFailed, Error: "boom again"},
		{Index: 2, Execution: 2, Outcome: OutcomeSucceeded},
		{Index: 3, Execution: 2, Outcome: OutcomeSucceeded},
	})
	require.NoError(t, err)
	require.Equal(t, []int{1}, failed, "item 1 spent its retry")
	c, err = repo.ItemCountsOf(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Running: 6, Succeeded: 3, Failed: 1}, c)
	first, err := repo.FirstFailedItems(ctx, "u1", 5)
	require.NoError(t, err)
	require.Equal(t, []ItemFailure{{Index: 1, Error: "boom again"}}, first)
	require.Equal(t, []string{"running", "pending", "running", "failed"}, itemHistory(t, repo, "u1", 1))
	require.Equal(t, []string{"running", "pending", "running", "succeeded"}, itemHistory(t, repo, "u1", 2))

	// The next run of attempt 1 (a crash, a move): the six left running are pending again,
	// the failed one stays failed. Attempt 2 (the task's retry) runs the failed one again.
	c, err = repo.BeginItems(ctx, "u1", owner1, 1, plan)
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 6, Succeeded: 3, Failed: 1}, c)
	c, err = repo.BeginItems(ctx, "u1", owner1, 2, plan)
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 7, Succeeded: 3}, c)
}

func TestARestartResetsItemsAndARetryFailedKeepsTheSucceeded(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	createTask(t, repo, "u1", "ns", "bulk", "noop")
	list := []json.RawMessage{json.RawMessage(`"a"`), json.RawMessage(`{"b":1}`), json.RawMessage(`3`)}
	_, err := repo.BeginItems(ctx, "u1", owner1, 1, ItemPlan{List: list})
	require.NoError(t, err)
	got, err := repo.ClaimItems(ctx, "u1", owner1, 1, 3)
	require.NoError(t, err)
	require.JSONEq(t, `{"b": 1}`, string(got[1].Value), "an item carries its list element")
	_, err = repo.FinishItems(ctx, "u1", owner1, 1, 0, []ItemOutcome{
		{Index: 0, Execution: 1, Outcome: OutcomeSucceeded},
		{Index: 1, Execution: 1, Outcome: OutcomeFailed, Error: "x"},
		{Index: 2, Execution: 1, Outcome: OutcomeSucceeded},
	})
	require.NoError(t, err)

	c, err := repo.BeginItems(ctx, "u1", owner1, 2, ItemPlan{List: list, Generation: 1, KeepSucceeded: true})
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 1, Succeeded: 2}, c, "retry-failed runs the failed item only")

	c, err = repo.BeginItems(ctx, "u1", owner1, 3, ItemPlan{List: list, Generation: 2})
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 3}, c, "a restart runs every item again")
	require.Equal(t, []string{"running", "succeeded", "pending"}, itemHistory(t, repo, "u1", 0))
}

func TestItemWritesAreFencedByTheTasksOwner(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	createTask(t, repo, "u1", "ns", "bulk", "noop")
	_, err := repo.BeginItems(ctx, "u1", owner1, 1, ItemPlan{Count: 3})
	require.NoError(t, err)
	got, err := repo.ClaimItems(ctx, "u1", owner1, 1, 1)
	require.NoError(t, err)

	require.NoError(t, repo.Release(ctx, "u1", owner1))
	_, err = repo.Claim(ctx, "u1", owner2, 0)
	require.NoError(t, err)

	_, err = repo.ClaimItems(ctx, "u1", owner1, 1, 5)
	require.ErrorIs(t, err, ErrFenced)
	_, err = repo.FinishItems(ctx, "u1", owner1, 1, 0, []ItemOutcome{{Index: got[0].Index, Execution: 1, Outcome: OutcomeSucceeded}})
	require.ErrorIs(t, err, ErrFenced)
	_, err = repo.BeginItems(ctx, "u2-missing", owner1, 1, ItemPlan{Count: 3})
	require.ErrorIs(t, err, ErrNotFound)

	c, err := repo.BeginItems(ctx, "u1", owner2, 1, ItemPlan{Count: 3})
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 3}, c, "the new owner takes the item the old one left running")
}

func indexes(items []ClaimedItem) []int {
	out := make([]int, len(items))
	for i, it := range items {
		out[i] = it.Index
	}
	return out
}

// A crash does not give an item fresh retries: an execution interrupted by it keeps the
// item's failures, so the next run fails it for good at its next failure.
func TestAnInterruptedItemKeepsItsFailures(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	createTask(t, repo, "u1", "ns", "bulk", "noop")
	plan := ItemPlan{Count: 1, MaxRetries: 1}
	_, err := repo.BeginItems(ctx, "u1", owner1, 1, plan)
	require.NoError(t, err)
	_, err = repo.ClaimItems(ctx, "u1", owner1, 1, 1)
	require.NoError(t, err)
	_, err = repo.FinishItems(ctx, "u1", owner1, 1, 1, []ItemOutcome{{Index: 0, Execution: 1, Outcome: OutcomeFailed, Error: "boom"}})
	require.NoError(t, err)
	_, err = repo.ClaimItems(ctx, "u1", owner1, 1, 1) // execution 2 is running when the process dies
	require.NoError(t, err)

	_, err = repo.BeginItems(ctx, "u1", owner1, 1, plan) // the next run of the same attempt
	require.NoError(t, err)
	got, err := repo.ClaimItems(ctx, "u1", owner1, 1, 1)
	require.NoError(t, err)
	failed, err := repo.FinishItems(ctx, "u1", owner1, 1, 1, []ItemOutcome{{Index: 0, Execution: got[0].Execution, Outcome: OutcomeFailed, Error: "boom"}})
	require.NoError(t, err)
	require.Equal(t, []int{0}, failed, "one retry in all, crash or not")
}

// A claim that races a takeover waits for it and then claims nothing: had it claimed under
// the old epoch after the new owner prepared the items, the new owner would never run them.
func TestAClaimRacingATakeoverWaitsAndIsFenced(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	createTask(t, repo, "u1", "ns", "bulk", "noop")
	_, err := repo.BeginItems(ctx, "u1", owner1, 1, ItemPlan{Count: 5})
	require.NoError(t, err)

	takeover := repo.db.WithContext(ctx).Begin()
	require.NoError(t, takeover.Error)
	require.NoError(t, takeover.Exec(`UPDATE background_tasks SET owner = 'op-2', owner_epoch = 2 WHERE uid = 'u1'`).Error)
	claimed := make(chan error, 1)
	go func() {
		_, err := repo.ClaimItems(ctx, "u1", owner1, 1, 5)
		claimed <- err
	}()
	select {
	case err := <-claimed:
		t.Fatalf("the claim did not wait for the takeover in progress: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, takeover.Commit().Error)
	require.ErrorIs(t, <-claimed, ErrFenced)
	c, err := repo.BeginItems(ctx, "u1", owner2, 1, ItemPlan{Count: 5})
	require.NoError(t, err)
	require.Equal(t, ItemCounts{Pending: 5}, c)
}
