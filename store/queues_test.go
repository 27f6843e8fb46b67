package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// queued creates n tasks owned by owner1 in namespace "ns" and has each ask queue q for a
// place, one after the other (one millisecond apart, so first come is first served).
func queued(t *testing.T, repo *Repository, q, prefix string, n, priority int, fair string, at time.Time) map[string]*tracker {
	t.Helper()
	out := map[string]*tracker{}
	for i := range n {
		uid := fmt.Sprintf("%s-%03d", prefix, i)
		out[uid] = createTask(t, repo, uid, "ns", uid, "noop")
		admitted, err := repo.AskQueue(testCtx(t), QueueAsk{UID: uid, Owner: owner1, Queue: q, Priority: priority, FairValue: fair,
			At: at.Add(time.Duration(i) * time.Millisecond)})
		require.NoError(t, err)
		require.False(t, admitted, "nobody is admitted before a round")
	}
	return out
}

func saveQueue(t *testing.T, repo *Repository, q Queue, now time.Time) {
	t.Helper()
	q.Namespace, q.UID = "ns", "uid-"+q.Name
	if q.RateBurst == 0 {
		q.RateBurst = 1
	}
	if q.AgingSeconds == 0 {
		q.AgingSeconds = 60
	}
	require.NoError(t, repo.SaveQueue(testCtx(t), q, now))
}

func TestAConcurrencyHoldsAcrossConcurrentRounds(t *testing.T) {
	repo := newRepo(t)
	now := time.Now()
	saveQueue(t, repo, Queue{Name: "reports", Concurrency: 5}, now)
	queued(t, repo, "reports", "r", 40, 0, "", now)

	// Twenty rounds at once, as twenty replicas would run them: the row lock serialises them.
	var wg sync.WaitGroup
	granted := make(chan []string, 20)
	for range 20 {
		wg.Go(func() {
			a, err := repo.Admit(testCtx(t), "ns", "reports", owner1, now)
			if err != nil {
				t.Error(err)
				return
			}
			granted <- a.Granted
		})
	}
	wg.Wait()
	close(granted)
	total := 0
	for g := range granted {
		total += len(g)
	}
	require.Equal(t, 5, total, "five places, however many rounds ran at once")
	a, err := repo.Admit(testCtx(t), "ns", "reports", owner1, now)
	require.NoError(t, err)
	require.Equal(t, Admission{Concurrency: 5, Running: 5, Waiting: 35, Mine: a.Mine, MineWaiting: a.MineWaiting}, a)
	require.Len(t, a.Mine, 5, "the owner's tasks that hold a place")
	require.Len(t, a.MineWaiting, 35, "and those that wait")
}

func TestAPlaceIsGivenBackWhenTheRunPausesOrEnds(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	now := time.Now()
	saveQueue(t, repo, Queue{Name: "q", Concurrency: 1}, now)
	tasks := queued(t, repo, "q", "t", 3, 0, "", now)
	a, err := repo.Admit(ctx, "ns", "q", owner1, now)
	require.NoError(t, err)
	require.Equal(t, []string{"t-000"}, a.Granted, "first come, first served")
	first := tasks["t-000"]
	admitted, err := repo.AskQueue(ctx, QueueAsk{UID: "t-000", Owner: owner1, Queue: "q", At: now})
	require.NoError(t, err)
	require.True(t, admitted, "asking again keeps the place")
	first.apply(t, repo, lifecycle.Running, 1, now)
	a, err = repo.Admit(ctx, "ns", "q", owner1, now)
	require.NoError(t, err)
	require.Empty(t, a.Granted, "a running task keeps its place")
	require.Equal(t, []string{"t-000"}, a.Mine, "it holds it")
	// A resumed run waiting for a runner slot (Running -> Pending, Queued), then starting,
	// keeps it too: it runs next.
	first.apply(t, repo, lifecycle.Pending, 1, now, func(ev *lifecycle.Event) { ev.Reason = lifecycle.ReasonQueued })
	first.apply(t, repo, lifecycle.Running, 1, now)
	a, err = repo.Admit(ctx, "ns", "q", owner1, now)
	require.NoError(t, err)
	require.Empty(t, a.Granted, "a run that waited for a runner slot kept its place")

	first.apply(t, repo, lifecycle.Paused, 1, now)
	a, err = repo.Admit(ctx, "ns", "q", owner1, now)
	require.NoError(t, err)
	require.Equal(t, []string{"t-001"}, a.Granted, "pausing gave the place back")

	// A task that waited and is stopped before it starts gives its request back too.
	require.NoError(t, repo.LeaveQueue(ctx, "t-001", owner1, false))
	a, err = repo.Admit(ctx, "ns", "q", owner1, now)
	require.NoError(t, err)
	require.Equal(t, []string{"t-002"}, a.Granted, "an unused place given back goes to the next")
	second := tasks["t-002"]
	second.apply(t, repo, lifecycle.Running, 1, now)
	second.apply(t, repo, lifecycle.Finished, 1, now)
	a, err = repo.Admit(ctx, "ns", "q", owner1, now)
	require.NoError(t, err)
	require.Zero(t, a.Running, "everything given back")
	require.Zero(t, a.Waiting, "nobody waits")
	require.Empty(t, a.Mine)
	require.Empty(t, a.MineWaiting)

	// Resuming the paused one asks again, at the end of the line.
	admitted, err = repo.AskQueue(ctx, QueueAsk{UID: "t-000", Owner: owner1, Queue: "q", At: now})
	require.NoError(t, err)
	require.False(t, admitted)
	_, err = repo.AskQueue(ctx, QueueAsk{UID: "t-000", Owner: owner2, Queue: "q", At: now})
	require.ErrorIs(t, err, ErrFenced, "only the owner asks")
}

func TestPriorityThenFirstComeWithAging(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	now := time.Now()
	saveQueue(t, repo, Queue{Name: "q", Concurrency: 1, AgingSeconds: 60}, now)
	queued(t, repo, "q", "old", 1, 0, "", now.Add(-10*time.Minute)) // waited 10 min: effective 10
	queued(t, repo, "q", "low", 2, 1, "", now)
	queued(t, repo, "q", "high", 2, 9, "", now)
	var order []string
	for range 5 {
		a, err := repo.Admit(ctx, "ns", "q", owner1, now)
		require.NoError(t, err)
		require.Len(t, a.Granted, 1)
		order = append(order, a.Granted[0])
		require.NoError(t, repo.LeaveQueue(ctx, a.Granted[0], owner1, false)) // as if it ran and ended
	}
	require.Equal(t, []string{"old-000", "high-000", "high-001", "low-000", "low-001"}, order,
		"aging lifted the old task above priority 9; then priority, then first come")
}

func TestFairnessSharesTheQueueBetweenTenants(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	now := time.Now()
	weights, _ := json.Marshal(map[string]int{"gold": 3})
	saveQueue(t, repo, Queue{Name: "q", Concurrency: 8, FairnessKey: "tenant", Weights: weights}, now)
	queued(t, repo, "q", "big", 50, 0, "big", now)
	queued(t, repo, "q", "small", 3, 0, "small", now.Add(time.Second))
	queued(t, repo, "q", "gold", 10, 0, "gold", now.Add(2*time.Second))
	a, err := repo.Admit(ctx, "ns", "q", owner1, now.Add(time.Minute))
	require.NoError(t, err)
	count := func(prefix string) int {
		return len(slices.DeleteFunc(slices.Clone(a.Granted), func(u string) bool { return u[:len(prefix)] != prefix }))
	}
	require.Equal(t, 8, len(a.Granted))
	require.Equal(t, 2, count("small"), "the small tenant is not held back by the big one's 50 tasks")
	require.Equal(t, 2, count("big"))
	require.Equal(t, 4, count("gold"), "weight 3 takes three turns for every one of the others")
}

func TestPauseAndRateLimitFollowTheGivenClock(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	now := time.Now().Truncate(time.Second)
	until := now.Add(time.Hour)
	rate := 2.0 // per second
	saveQueue(t, repo, Queue{Name: "q", Concurrency: 100, Paused: true, PausedUntil: &until, RatePerSecond: &rate, RateBurst: 3}, now)
	queued(t, repo, "q", "t", 10, 0, "", now)
	a, err := repo.Admit(ctx, "ns", "q", owner1, now.Add(59*time.Minute))
	require.NoError(t, err)
	require.True(t, a.Paused)
	require.Empty(t, a.Granted, "paused until an hour from now")
	require.WithinDuration(t, until, *a.Until, time.Millisecond)

	at := until
	a, err = repo.Admit(ctx, "ns", "q", owner1, at)
	require.NoError(t, err)
	require.False(t, a.Paused)
	require.Len(t, a.Granted, 3, "the burst")
	a, err = repo.Admit(ctx, "ns", "q", owner1, at.Add(100*time.Millisecond))
	require.NoError(t, err)
	require.Empty(t, a.Granted)
	require.True(t, a.RateLimited)
	require.WithinDuration(t, at.Add(500*time.Millisecond), a.NextToken, time.Millisecond, "2 per second: the next in half a second")
	a, err = repo.Admit(ctx, "ns", "q", owner1, at.Add(1500*time.Millisecond))
	require.NoError(t, err)
	require.Len(t, a.Granted, 3, "1.5 s at 2 per second")

	// A queue that does not exist admits nothing and says so.
	require.NoError(t, repo.DeleteQueue(ctx, "ns", "q", "uid-q"))
	a, err = repo.Admit(ctx, "ns", "q", owner1, at.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, a.Missing)
	require.Equal(t, 4, a.Waiting)
	require.Empty(t, a.Granted)
	require.Len(t, a.Mine, 6, "places granted before the queue was deleted are kept: those tasks may start")
	stats, err := repo.QueueStats(ctx, "ns", "q", at.Add(2*time.Second))
	require.NoError(t, err)
	require.Equal(t, 6, stats.Running)
	require.Equal(t, 4, stats.Pending)
	require.Equal(t, 6, stats.AdmittedLastMinute)
	require.WithinDuration(t, now.Add(6*time.Millisecond), *stats.OldestWaitingSince, time.Millisecond)
}

// A weight of 0 (the API refuses it; the row could still hold one) counts as 1 rather than
// failing every round of the queue with a division by zero.
func TestAZeroWeightDoesNotStallTheQueue(t *testing.T) {
	repo := newRepo(t)
	now := time.Now()
	saveQueue(t, repo, Queue{Name: "q", Concurrency: 2, FairnessKey: "tenant", Weights: json.RawMessage(`{"a":0,"b":-3}`)}, now)
	queued(t, repo, "q", "a", 2, 0, "a", now)
	queued(t, repo, "q", "b", 2, 0, "b", now)
	a, err := repo.Admit(testCtx(t), "ns", "q", owner1, now)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a-000", "b-000"}, a.Granted, "one each: weights under 1 count as 1")
}
