package runner

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
)

// fakeRun is a Control, ItemsHost and ItemSource in one: n items, all pending, and a pause
// point that records how many items were executing when the run reached it.
type fakeRun struct {
	n           int
	mu          sync.Mutex
	next        int
	executing   *atomic.Int64
	yields      atomic.Int64
	yieldedBusy atomic.Int64
	// claimed and recorded count items: at a pause point every claimed item is recorded.
	claimed, recorded atomic.Int64
}

func (f *fakeRun) Key() Key                                   { return "k" }
func (f *fakeRun) Attempt() int                               { return 1 }
func (f *fakeRun) Deadline() (time.Time, bool)                { return time.Time{}, false }
func (f *fakeRun) SetProgress(string)                         {}
func (f *fakeRun) SaveCheckpoint(context.Context, any) error  { return nil }
func (f *fakeRun) LoadCheckpoint(any) (bool, error)           { return false, nil }
func (f *fakeRun) Sleep(context.Context, time.Duration) error { return nil }
func (f *fakeRun) Heartbeat()                                 {}
func (f *fakeRun) Logger() logr.Logger                        { return logr.Discard() }
func (f *fakeRun) Labels() map[string]string                  { return nil }
func (f *fakeRun) Annotations() map[string]string             { return nil }
func (f *fakeRun) IdempotencyKey(string) string               { return "" }
func (f *fakeRun) Items() (ItemSource, bool)                  { return f, true }
func (f *fakeRun) Pausing() bool                              { return false }
func (f *fakeRun) ReportItems(ItemCounts)                     {}
func (f *fakeRun) Parallelism() int                           { return 8 }
func (f *fakeRun) Begin(context.Context) (ItemCounts, error) {
	return ItemCounts{Pending: int64(f.n)}, nil
}
func (f *fakeRun) Finish(_ context.Context, o []ItemOutcome) ([]int, error) {
	f.recorded.Add(int64(len(o)))
	return nil, nil
}

// Yield stands for a pause requested between the run's look at Pausing and its pause point:
// it would park the run here, so nothing may be executing.
func (f *fakeRun) Yield(context.Context) error {
	f.yields.Add(1)
	if f.executing.Load() > 0 || f.claimed.Load() != f.recorded.Load() {
		f.yieldedBusy.Add(1)
	}
	return nil
}

func (f *fakeRun) Claim(_ context.Context, n int) ([]ClaimedItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ClaimedItem
	for ; f.next < f.n && len(out) < n; f.next++ {
		out = append(out, ClaimedItem{Index: f.next, Execution: 1})
	}
	f.claimed.Add(int64(len(out)))
	return out, nil
}

type slowItem struct{ executing *atomic.Int64 }

func (s slowItem) RunItem(context.Context, ItemControl, Item[struct{}]) error {
	s.executing.Add(1)
	defer s.executing.Add(-1)
	time.Sleep(time.Millisecond)
	return nil
}

// The run reaches its pause point only when no item executes: a pause that lands after its
// look at Pausing parks a run that has nothing in flight.
func TestTheRunYieldsOnlyWithNoItemInFlight(t *testing.T) {
	executing := new(atomic.Int64)
	f := &fakeRun{n: 2000, executing: executing}
	run := &itemsRun[struct{}]{task: slowItem{executing: executing}}
	_, err := run.Run(context.Background(), f)
	require.NoError(t, err)
	require.Positive(t, f.yields.Load())
	require.Zero(t, f.yieldedBusy.Load(), "pause points reached with items executing or not yet recorded")
}

// retryRun has one item that fails its first execution (with a retry left) and a pause that
// comes once the run found nothing more to claim: the settle before the pause records the
// failure, which makes the item pending again.
type retryRun struct {
	fakeRun
	claims, executions int
	pending            bool
	paused             bool
}

func (f *retryRun) Pausing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claims >= 2 && !f.paused {
		f.paused = true
		return true
	}
	return false
}

func (f *retryRun) Items() (ItemSource, bool) { return f, true }

func (f *retryRun) Begin(context.Context) (ItemCounts, error) { return ItemCounts{Pending: 1}, nil }

func (f *retryRun) Claim(_ context.Context, _ int) ([]ClaimedItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	if !f.pending {
		return nil, nil
	}
	f.pending = false
	f.executions++
	return []ClaimedItem{{Index: 0, Execution: f.executions}}, nil
}

func (f *retryRun) Finish(_ context.Context, outcomes []ItemOutcome) ([]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range outcomes {
		if o.Err != nil {
			f.pending = true // retried
		}
	}
	return nil, nil
}

func (f *retryRun) Yield(context.Context) error { return nil }

type failOnce struct{ failed atomic.Bool }

func (f *failOnce) RunItem(context.Context, ItemControl, Item[struct{}]) error {
	if f.failed.CompareAndSwap(false, true) {
		time.Sleep(30 * time.Millisecond) // the run claims again meanwhile, and finds nothing
		return errors.New("first execution fails")
	}
	return nil
}

// A pause that records a failure with a retry left must not end the run: the item is pending
// again and runs once the run goes on (it used to end Finished with the item never run).
func TestARetryRecordedByAPauseStillRuns(t *testing.T) {
	f := &retryRun{fakeRun: fakeRun{executing: new(atomic.Int64)}, pending: true}
	run := &itemsRun[struct{}]{task: &failOnce{}}
	res, err := run.Run(context.Background(), f)
	require.NoError(t, err)
	require.JSONEq(t, `{"items":1}`, string(res))
	require.Equal(t, 2, f.executions, "the retry ran")
}

// cancelledClaimRun is cancelled while its second claim is in flight, and the claim commits
// anyway, as a statement PostgreSQL finished before it heard of the cancellation does.
type cancelledClaimRun struct {
	fakeRun
	cancel context.CancelFunc
	claims int
	// deadlined counts claims of the run before its cancellation that had a deadline: a slow
	// claim of a run nobody stopped must wait, not fail.
	deadlined int
}

func (f *cancelledClaimRun) Items() (ItemSource, bool) { return f, true }

func (f *cancelledClaimRun) Claim(ctx context.Context, n int) ([]ClaimedItem, error) {
	f.mu.Lock()
	f.claims++
	second := f.claims == 2
	if _, ok := ctx.Deadline(); ok && !second {
		f.deadlined++
	}
	f.mu.Unlock()
	if second {
		f.cancel()
	}
	items, _ := f.fakeRun.Claim(ctx, n)
	return items, ctx.Err()
}

// A run stopped while it claims items records the items that claim took as interrupted
// (pending again), never executed: none is left running for nobody.
func TestItemsClaimedAsTheRunIsStoppedAreNotLeftRunning(t *testing.T) {
	executing := new(atomic.Int64)
	ctx, cancel := context.WithCancel(context.Background())
	f := &cancelledClaimRun{fakeRun: fakeRun{n: 100, executing: executing}, cancel: cancel}
	run := &itemsRun[struct{}]{task: slowItem{executing: executing}}
	_, err := run.Run(ctx, f)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 2, f.claims, "no claim after the cancellation")
	require.Zero(t, f.deadlined, "a claim of a run nobody stopped has no deadline")
	require.Positive(t, f.claimed.Load())
	require.Equal(t, f.claimed.Load(), f.recorded.Load(), "every claimed item is recorded, none left running")
}
