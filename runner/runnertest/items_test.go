package runnertest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/runnertest"
)

// mailParams: every FailEvery-th item fails in attempts before SucceedFrom (0: always).
type mailParams struct {
	FailEvery   int `json:"failEvery,omitempty"`
	SucceedFrom int `json:"succeedFrom,omitempty"`
	// HoldMS makes every item take this long.
	HoldMS int `json:"holdMS,omitempty"`
}

func (mailParams) TaskName() string { return "send-mail" }

// mailer counts items executing at once, and starts.
type mailer struct {
	p                mailParams
	now, peak, start *atomic.Int64
}

func (m *mailer) RunItem(ctx context.Context, ctl runner.ItemControl, item runner.Item[string]) error {
	m.start.Add(1)
	n := m.now.Add(1)
	defer m.now.Add(-1)
	for {
		p := m.peak.Load()
		if n <= p || m.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if m.p.HoldMS > 0 {
		select {
		case <-time.After(time.Duration(m.p.HoldMS) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.p.FailEvery > 0 && item.Index%m.p.FailEvery == 0 && (m.p.SucceedFrom == 0 || ctl.Attempt() < m.p.SucceedFrom) {
		return fmt.Errorf("mailbox %d is full", item.Index)
	}
	return nil
}

func mailRegistry(t *testing.T) (*runner.Registry, *mailer) {
	m := &mailer{now: new(atomic.Int64), peak: new(atomic.Int64), start: new(atomic.Int64)}
	reg := runner.NewRegistry()
	require.NoError(t, runner.RegisterItems(reg, "Sends mail", func(p mailParams) (runner.ItemTask[string], error) {
		m.p = p
		return m, nil
	}))
	return reg, m
}

func TestEveryItemRunsOnceWithinItsParallelism(t *testing.T) {
	reg, m := mailRegistry(t)
	items := runnertest.NewItems(2000, 7, 0)
	res := runnertest.Run(t, reg, mailParams{}, runnertest.WithItems(items))
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.JSONEq(t, `{"items": 2000}`, string(res.Result))
	require.Equal(t, runner.ItemCounts{Succeeded: 2000}, items.Counts())
	require.EqualValues(t, 2000, m.start.Load(), "each item once")
	require.LessOrEqual(t, m.peak.Load(), int64(7), "never more than parallelism at once")
	require.Equal(t, []v1alpha1.Phase{v1alpha1.PhaseRunning, v1alpha1.PhaseFinished}, res.Phases())
}

func TestFailedItemsAreRetriedThenFailTheRunAndARetryRunsOnlyThem(t *testing.T) {
	reg, m := mailRegistry(t)
	items := runnertest.NewItems(100, 4, 2)
	res := runnertest.Run(t, reg, mailParams{FailEvery: 10, SucceedFrom: 2}, runnertest.WithItems(items))
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Equal(t, lifecycle.ReasonError, res.Reason)
	require.Contains(t, res.Message, "10 of 100 items failed, e.g. item 0: mailbox 0 is full; item 10: mailbox 10 is full")
	require.Equal(t, 3, items.Executions(10), "the first execution and two retries")
	require.Equal(t, 1, items.Executions(11))
	require.EqualValues(t, 90+30, m.start.Load())

	// The task's retry (attempt 2) runs the ten failed items, not the ninety that succeeded.
	res = runnertest.Run(t, reg, mailParams{FailEvery: 10, SucceedFrom: 2}, runnertest.WithItems(items), runnertest.WithAttempt(2))
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.Equal(t, runner.ItemCounts{Succeeded: 100}, items.Counts())
	require.Equal(t, 1, items.Executions(11))
	require.Equal(t, 4, items.Executions(10))
}

func TestAPausedRunExecutesNoItemAndResumes(t *testing.T) {
	reg, m := mailRegistry(t)
	items := runnertest.NewItems(400, 8, 0)
	run := runnertest.Start(t, reg, mailParams{HoldMS: 5}, runnertest.WithItems(items))
	run.WaitFor(v1alpha1.PhaseRunning)
	require.Eventually(t, func() bool { return m.start.Load() > 20 }, 10*time.Second, time.Millisecond)
	run.Pause()
	run.WaitFor(v1alpha1.PhasePaused)
	require.Zero(t, m.now.Load(), "the items in flight ended before the run parked")
	started := m.start.Load()
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, started, m.start.Load(), "no item starts while paused")
	require.Less(t, started, int64(400))
	c := items.Counts()
	require.Zero(t, c.Running, "every outcome was recorded before the pause")

	run.Resume()
	res := run.Wait()
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.Equal(t, runner.ItemCounts{Succeeded: 400}, items.Counts())
	require.EqualValues(t, 400, m.start.Load())
}

func TestAStoppedRunLeavesItsItemsPendingNotFailed(t *testing.T) {
	reg, m := mailRegistry(t)
	items := runnertest.NewItems(400, 8, 0)
	run := runnertest.Start(t, reg, mailParams{HoldMS: 50}, runnertest.WithItems(items))
	require.Eventually(t, func() bool { return m.start.Load() >= 8 }, 10*time.Second, time.Millisecond)
	run.Stop()
	res := run.Wait()
	require.Equal(t, v1alpha1.PhaseStopped, res.Phase)
	c := items.Counts()
	require.Zero(t, c.Running+c.Failed, "interrupted items are pending again: %+v", c)
	require.EqualValues(t, 400, c.Total())

	// The next run (a restart would reset them; a resume after a move) finishes the rest.
	res = runnertest.Run(t, reg, mailParams{}, runnertest.WithItems(items), runnertest.WithAttempt(2))
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.Equal(t, runner.ItemCounts{Succeeded: 400}, items.Counts())
}

func TestAnItemsTypeWithoutItemsFailsForGood(t *testing.T) {
	reg, _ := mailRegistry(t)
	res := runnertest.Run(t, reg, mailParams{})
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Equal(t, lifecycle.ReasonPermanentError, res.Reason)
	require.Contains(t, res.Message, "spec.items")
}

func TestAPanickingItemFailsThatItemOnly(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.RegisterItems(reg, "Panics on item 3", func(mailParams) (runner.ItemTask[int], error) {
		return itemFunc(func(it runner.Item[int]) error {
			if it.Index == 3 {
				panic("three")
			}
			if it.Value != it.Index*10 {
				return errors.New("wrong value")
			}
			return nil
		}), nil
	}))
	items := runnertest.NewItemList(2, 0, 0, 10, 20, 30, 40)
	res := runnertest.Run(t, reg, mailParams{}, runnertest.WithItems(items))
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Contains(t, res.Message, "1 of 5 items failed, e.g. item 3: panic: three")
	require.Equal(t, int64(4), items.Counts().Succeeded, "each item got its list value")
}

type itemFunc func(runner.Item[int]) error

func (f itemFunc) RunItem(_ context.Context, _ runner.ItemControl, it runner.Item[int]) error {
	return f(it)
}

// Pausing many times while items execute: whenever the run is Paused, no item executes, and
// every outcome was recorded (a pause requested while items were in flight used to park the
// run with them still executing).
func TestEveryPauseWaitsForTheItemsInFlight(t *testing.T) {
	reg, m := mailRegistry(t)
	items := runnertest.NewItems(3000, 16, 0)
	run := runnertest.Start(t, reg, mailParams{HoldMS: 3}, runnertest.WithItems(items))
	run.WaitFor(v1alpha1.PhaseRunning)
	for i := range 15 {
		time.Sleep(time.Duration(5+i) * time.Millisecond)
		run.Pause()
		res := run.WaitForTransitions(2*i + 2)
		if res.Phase.Terminal() {
			break
		}
		require.Equal(t, v1alpha1.PhasePaused, res.Phase)
		require.Zero(t, m.now.Load(), "pause %d: no item executes while Paused", i)
		require.Zero(t, items.Counts().Running, "pause %d: every outcome recorded", i)
		run.Resume()
		run.WaitForTransitions(2*i + 3)
	}
	res := run.Wait()
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.Equal(t, runner.ItemCounts{Succeeded: 3000}, items.Counts())
}

type strictValue struct {
	To string `json:"to"`
}

// An item's value is decoded strictly, like params; an item's idempotency key is the same in
// every attempt of the task.
func TestItemValuesAreStrictAndKeysOutliveAttempts(t *testing.T) {
	keys := map[int][]string{}
	var mu sync.Mutex
	reg := runner.NewRegistry()
	require.NoError(t, runner.RegisterItems(reg, "Records keys", func(mailParams) (runner.ItemTask[strictValue], error) {
		return strictFunc(func(ctl runner.ItemControl, it runner.Item[strictValue]) error {
			mu.Lock()
			keys[it.Index] = append(keys[it.Index], it.IdempotencyKey)
			mu.Unlock()
			if ctl.Attempt() == 1 {
				return errors.New("not yet")
			}
			return nil
		}), nil
	}))
	items := runnertest.NewItemList(2, 0, map[string]any{"to": "a"}, map[string]any{"to": "b", "cc": "c"})
	res := runnertest.Run(t, reg, mailParams{}, runnertest.WithItems(items))
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Contains(t, res.Message, `item 1: decode item 1's value: json: unknown field "cc"`)
	require.Len(t, keys[1], 0, "an item whose value does not decode does not run")
	res = runnertest.Run(t, reg, mailParams{}, runnertest.WithItems(items), runnertest.WithAttempt(2))
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase, "item 1 fails again")
	require.Len(t, keys[0], 2)
	require.Equal(t, keys[0][0], keys[0][1], "the same key in attempts 1 and 2")
	require.NotEqual(t, keys[0][0], "")
}

type strictFunc func(runner.ItemControl, runner.Item[strictValue]) error

func (f strictFunc) RunItem(_ context.Context, ctl runner.ItemControl, it runner.Item[strictValue]) error {
	return f(ctl, it)
}

// A stop while a pause waits for the items in flight: they are interrupted and recorded
// pending, not left running.
func TestAStopDuringAPauseRecordsTheInterruptedItems(t *testing.T) {
	reg, m := mailRegistry(t)
	items := runnertest.NewItems(100, 4, 0)
	run := runnertest.Start(t, reg, mailParams{HoldMS: 2000}, runnertest.WithItems(items))
	require.Eventually(t, func() bool { return m.now.Load() == 4 }, 10*time.Second, time.Millisecond)
	run.Pause()
	time.Sleep(50 * time.Millisecond) // the run waits for its four items to end
	run.Stop()
	res := run.Wait()
	require.Equal(t, v1alpha1.PhaseStopped, res.Phase)
	c := items.Counts()
	require.Zero(t, c.Running, "%+v", c)
	require.EqualValues(t, 100, c.Pending)
}
