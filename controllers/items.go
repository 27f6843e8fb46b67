package controllers

import (
	"context"
	"encoding/json"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// maxItemErrorInStatus bounds an item's error in status.items.firstFailures.
const maxItemErrorInStatus = 256

// itemRows is what a run of a task with items needs of PostgreSQL.
type itemRows interface {
	BeginItems(ctx context.Context, uid string, owner store.Owner, attempt int, plan store.ItemPlan) (store.ItemCounts, error)
	ClaimItemsFrom(ctx context.Context, uid string, owner store.Owner, attempt, n, from int) ([]store.ClaimedItem, error)
	FinishItems(ctx context.Context, uid string, owner store.Owner, attempt, maxRetries int, outcomes []store.ItemOutcome) ([]int, error)
}

// itemSource is the runner.ItemSource of one run: its task's rows in PostgreSQL, every write
// fenced by the owner epoch this process holds the task with.
type itemSource struct {
	rows        itemRows
	uid         string
	owner       func() store.Owner
	attempt     int
	plan        store.ItemPlan
	parallelism int
	// next is where the next claim starts: past the last item claimed (see ClaimItemsFrom).
	next int
}

var _ runner.ItemSource = (*itemSource)(nil)

// itemPlan is what spec.items asks of the run of restart generation gen.
func itemPlan(items *v1alpha1.ItemsSpec, gen int64) store.ItemPlan {
	p := store.ItemPlan{MaxRetries: int(items.MaxRetries), Generation: gen,
		KeepSucceeded: gen > 0 && items.RetryFailedGeneration == gen}
	if items.Count != nil {
		p.Count = int(*items.Count)
	}
	for _, v := range items.List {
		p.List = append(p.List, json.RawMessage(v.Raw))
	}
	return p
}

func (s *itemSource) Parallelism() int { return s.parallelism }

func (s *itemSource) Begin(ctx context.Context) (runner.ItemCounts, error) {
	c, err := s.rows.BeginItems(ctx, s.uid, s.owner(), s.attempt, s.plan)
	s.plan.List = nil // seeded: the run no longer needs the values in memory
	if err != nil {
		return runner.ItemCounts{}, err
	}
	return runner.ItemCounts{Pending: c.Pending, Running: c.Running, Succeeded: c.Succeeded, Failed: c.Failed}, nil
}

func (s *itemSource) Claim(ctx context.Context, n int) ([]runner.ClaimedItem, error) {
	got, err := s.rows.ClaimItemsFrom(ctx, s.uid, s.owner(), s.attempt, n, s.next)
	if err != nil {
		return nil, err
	}
	out := make([]runner.ClaimedItem, len(got))
	for i, it := range got {
		out[i] = runner.ClaimedItem{Index: it.Index, Value: it.Value, Execution: it.Execution, Generation: it.Generation}
		if it.Index >= s.next {
			s.next = it.Index + 1
		}
	}
	return out, nil
}

func (s *itemSource) Finish(ctx context.Context, outcomes []runner.ItemOutcome) ([]int, error) {
	rows := make([]store.ItemOutcome, len(outcomes))
	for i, o := range outcomes {
		rows[i] = store.ItemOutcome{Index: o.Index, Execution: o.Execution, Outcome: store.OutcomeSucceeded}
		switch {
		case o.Interrupted:
			rows[i].Outcome = store.OutcomeInterrupted
		case o.Err != nil:
			rows[i].Outcome, rows[i].Error = store.OutcomeFailed, o.Err.Error()
		}
	}
	return s.rows.FinishItems(ctx, s.uid, s.owner(), s.attempt, s.plan.MaxRetries, rows)
}

// itemsStatus is status.items from a run's counts.
func itemsStatus(c runner.ItemCounts) *v1alpha1.ItemsStatus {
	out := &v1alpha1.ItemsStatus{Total: c.Total(), Pending: c.Pending, Running: c.Running, Succeeded: c.Succeeded, Failed: c.Failed}
	for _, f := range c.FirstFailures {
		out.FirstFailures = append(out.FirstFailures, v1alpha1.ItemFailure{Index: int64(f.Index), Error: kit.TruncateRunes(f.Error, maxItemErrorInStatus)})
	}
	return out
}

// itemCounts is what the status writer reads of a task's items when no run here reports them.
type itemCounts interface {
	ItemCountsOf(ctx context.Context, uid string) (store.ItemCounts, error)
	FirstFailedItems(ctx context.Context, uid string, n int) ([]store.ItemFailure, error)
}

// storedItems reads uid's counts and first failures from PostgreSQL (nil without items). It is
// read when no run of the task executes here, and this process writes the task's status only
// while it owns it, so no run executes anywhere: items a crashed run left running are pending
// (the next run takes them back).
func storedItems(ctx context.Context, rows itemCounts, uid string) (*v1alpha1.ItemsStatus, error) {
	c, err := rows.ItemCountsOf(ctx, uid)
	if err != nil || c.Total() == 0 {
		return nil, err
	}
	rc := runner.ItemCounts{Pending: c.Pending + c.Running, Succeeded: c.Succeeded, Failed: c.Failed}
	if c.Failed > 0 {
		failed, err := rows.FirstFailedItems(ctx, uid, 5)
		if err != nil {
			return nil, err
		}
		for _, f := range failed {
			rc.FirstFailures = append(rc.FirstFailures, runner.ItemFailure{Index: f.Index, Error: f.Error})
		}
	}
	return itemsStatus(rc), nil
}
