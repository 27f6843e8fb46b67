package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

func TestRecordTransitionWritesTheLifecycleColumns(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	progress := "0/10"
	w := k.write(t, lifecycle.Running, 1, t0)
	w.Progress = &progress
	require.NoError(t, repo.RecordTransition(ctx, w))
	k.advance(w)
	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, json.RawMessage(`{"step":3}`)))
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, normalize(k.rec), normalize(got.Record()), "the row holds exactly what lifecycle.Apply computed")
	require.Equal(t, "0/10", got.Progress)
	require.True(t, got.StartTime.Equal(t0))
	require.JSONEq(t, `{"step":3}`, string(got.CurrentCheckpoint()))

	t1 := t0.Add(90 * time.Second)
	w = k.write(t, lifecycle.Finished, 1, t1)
	w.Result = json.RawMessage(`{"rows":42}`)
	require.NoError(t, repo.RecordTransition(ctx, w))
	k.advance(w)
	got, err = repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, normalize(k.rec), normalize(got.Record()))
	require.JSONEq(t, `{"rows":42}`, string(got.Result))
	require.True(t, got.EndTime.Equal(t1))
	require.Equal(t, "0/10", got.Progress, "kept when the transition has none")
	require.NotNil(t, got.CurrentCheckpoint(), "the attempt's checkpoint stays until a new attempt")

	// A restart: a new attempt clears the result, the end time, the checkpoint and the progress.
	k.apply(t, repo, lifecycle.Pending, 2, t1.Add(time.Minute), func(ev *lifecycle.Event) { ev.RestartGeneration = 4 })
	got, err = repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, normalize(k.rec), normalize(got.Record()))
	require.Nil(t, got.Result)
	require.Nil(t, got.EndTime)
	require.Nil(t, got.Checkpoint)
	require.Nil(t, got.CheckpointAttempt)
	require.Empty(t, got.Progress)
	require.Equal(t, int64(4), got.ObservedRestartGeneration)

	hist, err := repo.History(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, hist, 4)
	for _, h := range hist {
		require.Equal(t, owner1.Epoch, *h.OwnerEpoch, "every history row names its writer")
	}
	require.Equal(t, "TestFINISHED", hist[2].Reason)
	require.True(t, hist[2].At.Equal(t1))
}

// TestReplayRebuildsTheRow: the row equals the fold of its history, so a row can always be
// rebuilt, and audited, from the transitions.
func TestReplayRebuildsTheRow(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	at := time.Now().UTC().Truncate(time.Microsecond)
	k.apply(t, repo, lifecycle.Running, 1, at)
	k.apply(t, repo, lifecycle.Failed, 1, at.Add(time.Second))
	k.apply(t, repo, lifecycle.Pending, 2, at.Add(2*time.Second), func(ev *lifecycle.Event) {
		ev.Reason, ev.RetryAt = lifecycle.ReasonRetryScheduled, at.Add(4*time.Second)
	})
	k.apply(t, repo, lifecycle.Running, 2, at.Add(4*time.Second))
	k.apply(t, repo, lifecycle.Paused, 2, at.Add(5*time.Second))

	hist, err := repo.History(ctx, "u1")
	require.NoError(t, err)
	trs := make([]lifecycle.Transition, len(hist))
	for i := range hist {
		trs[i] = hist[i].Lifecycle()
	}
	replayed, err := lifecycle.Replay(trs)
	require.NoError(t, err)
	row, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, normalize(row.Record()), normalize(replayed))
}

// normalize drops time zones and monotonic readings that differ between Go and PostgreSQL
// values of the same instant.
func normalize(r lifecycle.Record) lifecycle.Record {
	for _, p := range []*time.Time{&r.StartTime, &r.EndTime, &r.LastRunTime, &r.RetryAt, &r.TransitionedAt} {
		if !p.IsZero() {
			*p = p.UTC().Truncate(time.Microsecond)
		}
	}
	return r
}

func TestRecordTransitionRejectsMalformedWrites(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	at := time.Now()
	for name, mod := range map[string]func(*TransitionWrite){
		"no uid":        func(w *TransitionWrite) { w.UID = "" },
		"seq not next":  func(w *TransitionWrite) { w.Transition.Seq = 5 },
		"from not prev": func(w *TransitionWrite) { w.Transition.From = lifecycle.Paused },
		"no owner":      func(w *TransitionWrite) { w.Owner = Owner{} },
	} {
		w := k.write(t, lifecycle.Running, 1, at)
		mod(&w)
		err := repo.RecordTransition(ctx, w)
		require.ErrorIs(t, err, ErrInvalidArgument, name)
		require.False(t, IsTransient(err))
	}
	missing := k.write(t, lifecycle.Running, 1, at)
	missing.UID = "missing"
	require.ErrorIs(t, repo.RecordTransition(ctx, missing), ErrNotFound)

	// Free text is made storable, never rejected: NUL removed, invalid UTF-8 replaced,
	// truncated to the column's limit.
	long := strings.Repeat("é", lifecycle.MaxMessageChars+10)
	progress := "p\x00" + strings.Repeat("q", 100)
	w := k.write(t, lifecycle.Running, 1, at, func(ev *lifecycle.Event) { ev.Message = "bad\x00byte\xff" + long })
	w.Progress = &progress
	require.NoError(t, repo.RecordTransition(ctx, w))
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, []rune(got.Message), lifecycle.MaxMessageChars)
	require.True(t, strings.HasPrefix(got.Message, "badbyte\uFFFD"))
	require.Len(t, []rune(got.Progress), lifecycle.MaxProgressChars)
}

// TestTwoOwnersAreToldApart is the store's side of fencing: an identical transition written by
// another owner is not a harmless replay, and an owner whose row was claimed by a later one
// cannot write a transition, a checkpoint or a column any more.
func TestTwoOwnersAreToldApart(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	at := time.Now()
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	first := k.apply(t, repo, lifecycle.Running, 1, at)

	require.NoError(t, repo.RecordTransition(ctx, first), "the owner's own replay (a lost reply) is a no-op")
	impostor := first
	impostor.Owner = owner2
	err := repo.RecordTransition(ctx, impostor)
	require.ErrorIs(t, err, ErrFenced, "the same transition from another owner is refused")
	var owned *OwnedError
	require.ErrorAs(t, err, &owned)
	require.Equal(t, owner1, owned.Owner)

	// owner2 takes the task over from owner1, which it established is gone.
	_, err = repo.Claim(ctx, "u1", owner2, 0)
	require.ErrorIs(t, err, ErrFenced, "a live owner's task cannot be claimed")
	row, err := repo.Claim(ctx, "u1", owner2, owner1.Epoch)
	require.NoError(t, err)
	got, _ := row.Owned()
	require.Equal(t, owner2, got)

	stale := k.write(t, lifecycle.Paused, 1, at)
	require.ErrorIs(t, repo.RecordTransition(ctx, stale), ErrFenced)
	require.ErrorIs(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, json.RawMessage(`{"x":1}`)), ErrFenced)
	p := "9/10"
	require.ErrorIs(t, repo.UpdateColumns(ctx, "u1", owner1, ColumnUpdate{Progress: &p}), ErrFenced)
	_, err = repo.Claim(ctx, "u1", owner1, owner2.Epoch-1)
	require.ErrorIs(t, err, ErrFenced, "an old owner cannot take its task back")

	k.owner = owner2
	k.apply(t, repo, lifecycle.Running, 1, at.Add(time.Second))
	hist, err := repo.History(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, []int64{owner1.Epoch, owner1.Epoch, owner2.Epoch}, []int64{*hist[0].OwnerEpoch, *hist[1].OwnerEpoch, *hist[2].OwnerEpoch})
}

func TestClaimHasExactlyOneWinner(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	for round := range 10 {
		uid := fmt.Sprintf("claim-%d", round)
		createTask(t, repo, uid, "ns", uid, "demo")
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, me := range []Owner{{Name: "a", Epoch: 10}, {Name: "b", Epoch: 11}} {
			wg.Go(func() {
				<-start
				_, errs[i] = repo.Claim(ctx, uid, me, owner1.Epoch)
			})
		}
		close(start)
		wg.Wait()
		require.True(t, (errs[0] == nil) != (errs[1] == nil), "exactly one claimer wins: %v / %v", errs[0], errs[1])
	}
}

func TestRecordTransitionRace(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	at := time.Now()
	for round := range 20 {
		uid := fmt.Sprintf("race-%d", round)
		k := createTask(t, repo, uid, "ns", uid, "demo")
		k.apply(t, repo, lifecycle.Running, 1, at)
		// Two writers of the same owner believe they may move the task out of RUNNING at seq 3.
		ws := []TransitionWrite{k.write(t, lifecycle.Paused, 1, at), k.write(t, lifecycle.Stopped, 1, at)}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range ws {
			wg.Go(func() {
				<-start
				errs[i] = repo.RecordTransition(ctx, ws[i])
			})
		}
		close(start)
		wg.Wait()

		var winner lifecycle.Status
		switch {
		case errs[0] == nil && errs[1] != nil:
			winner = lifecycle.Paused
			require.ErrorIs(t, errs[1], ErrConflict)
		case errs[1] == nil && errs[0] != nil:
			winner = lifecycle.Stopped
			require.ErrorIs(t, errs[0], ErrConflict)
		default:
			t.Fatalf("want exactly one winner, got errors %v / %v", errs[0], errs[1])
		}
		got, err := repo.GetTask(ctx, uid)
		require.NoError(t, err)
		require.Equal(t, winner, got.Status)
		hist, err := repo.History(ctx, uid)
		require.NoError(t, err)
		require.Len(t, hist, 3)
		require.Equal(t, winner, hist[2].ToStatus)
	}
}

func TestRecordTransitionContiguousUnderConcurrency(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	const tasks, cycles = 50, 5
	trackers := make([]*tracker, tasks)
	for i := range tasks {
		uid := fmt.Sprintf("c-%02d", i)
		trackers[i] = createTask(t, repo, uid, "ns", uid, "demo")
	}
	at := time.Now()
	errs := make(chan error, tasks)
	var wg sync.WaitGroup
	for _, k := range trackers {
		wg.Go(func() {
			for _, to := range append(slices.Repeat([]lifecycle.Status{lifecycle.Running, lifecycle.Paused}, cycles), lifecycle.Stopped) {
				w, err := writeFor(k, to, at)
				if err == nil {
					err = repo.RecordTransition(ctx, w)
				}
				if err != nil {
					errs <- err
					return
				}
				k.advance(w)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	want := int64(1 + 2*cycles + 1)
	var gaps int
	require.NoError(t, repo.db.WithContext(ctx).Raw(`
		SELECT count(*) FROM (
			SELECT task_uid, count(*) AS n, min(seq) AS lo, max(seq) AS hi
			FROM background_task_transitions GROUP BY task_uid
		) s JOIN background_tasks t ON t.uid = s.task_uid
		WHERE s.n <> ? OR s.lo <> 1 OR s.hi <> ? OR t.last_seq <> s.hi OR t.status <> 'STOPPED'`,
		want, want).Scan(&gaps).Error)
	require.Zero(t, gaps, "every task has seqs 1..n without gaps and last_seq = n")
}

// writeFor is tracker.write for goroutines (no *testing.T): attempt 1 throughout.
func writeFor(k *tracker, to lifecycle.Status, at time.Time) (TransitionWrite, error) {
	tr, err := lifecycle.Next(k.rec, lifecycle.Event{To: to, Attempt: 1, Reason: "Test", At: at})
	return TransitionWrite{UID: k.uid, Owner: k.owner, Prev: k.rec, Transition: tr}, err
}

// TestReleaseHandsTheRowOverAtOnce: an owner that handed its run over releases the row, and
// the next owner claims it without waiting for the first to be gone; nobody else may release
// it, and the released owner's later writes are refused.
func TestReleaseHandsTheRowOverAtOnce(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "rel", "ns", "rel", "demo")
	k.apply(t, repo, lifecycle.Running, 1, time.Now())

	var owned *OwnedError
	require.ErrorAs(t, repo.Release(ctx, "rel", owner2), &owned, "only the owner releases")
	require.Equal(t, owner1, owned.Owner)

	require.NoError(t, repo.Release(ctx, "rel", owner1))
	row, err := repo.GetTask(ctx, "rel")
	require.NoError(t, err)
	_, isOwned := row.Owned()
	require.False(t, isOwned, "nobody owns a released row")
	require.Equal(t, lifecycle.Running, row.Status, "the lifecycle is untouched: the next owner resumes the run")

	require.ErrorIs(t, repo.RecordTransition(ctx, k.write(t, lifecycle.Paused, 1, time.Now())), ErrFenced,
		"the released owner writes nothing more")
	row, err = repo.Claim(ctx, "rel", owner2, 0)
	require.NoError(t, err, "claimed from nobody, at once")
	o, _ := row.Owned()
	require.Equal(t, owner2, o)
	require.ErrorIs(t, repo.Release(ctx, "rel", owner1), ErrFenced)
}

// The row keeps the traceparent of the latest traced execution: a transition without one (the
// controller's, an untraced run) leaves it, and only a well-formed traceparent is stored.
func TestTheRowKeepsTheLatestExecutionsSpan(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "us", "ns", "n", "demo")
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	got, err := repo.GetTask(ctx, "us")
	require.NoError(t, err)
	require.Empty(t, got.RunSpan, "no execution traced yet")

	const span = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	w := k.write(t, lifecycle.Running, 1, t0)
	w.Span = span
	require.NoError(t, repo.RecordTransition(ctx, w))
	k.advance(w)
	k.apply(t, repo, lifecycle.Paused, 1, t0.Add(time.Second))
	got, err = repo.GetTask(ctx, "us")
	require.NoError(t, err)
	require.Equal(t, span, got.RunSpan, "kept by a transition without a span")

	w = k.write(t, lifecycle.Running, 1, t0.Add(2*time.Second))
	w.Span = "not a traceparent"
	require.Error(t, repo.RecordTransition(ctx, w), "the CHECK constraint refuses a malformed span")
}
