package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecordTransitionSetsColumns(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", 0, json.RawMessage(`{"stale":true}`)))

	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	start := t0
	k.apply(t, repo, StatusRunning, 1, t0, func(tr *Transition) {
		tr.StartTime, tr.Progress, tr.ClearCheckpoint = &start, "0/10", true
	})
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, StatusRunning, got.Status)
	require.Equal(t, 1, got.Attempt)
	require.Equal(t, int64(2), got.LastSeq)
	require.Equal(t, "0/10", got.Progress)
	require.Equal(t, "to RUNNING", got.Message)
	require.True(t, got.StartTime.Equal(t0))
	require.True(t, got.LastRunTime.Equal(t0))
	require.Nil(t, got.EndTime)
	require.Nil(t, got.Checkpoint, "ClearCheckpoint drops the old checkpoint")
	require.Nil(t, got.CheckpointAttempt)

	t1 := t0.Add(90 * time.Second)
	k.apply(t, repo, StatusFinished, 1, t1, func(tr *Transition) {
		tr.Result, tr.Progress = json.RawMessage(`{"rows": 42}`), "10/10"
	})
	got, err = repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, StatusFinished, got.Status)
	require.JSONEq(t, `{"rows": 42}`, string(got.Result))
	require.True(t, got.EndTime.Equal(t1))
	require.True(t, got.StartTime.Equal(t0), "kept when not given")
	require.True(t, got.LastRunTime.Equal(t0), "only RUNNING moves last_run_time")
	require.Equal(t, "10/10", got.Progress)

	// A new attempt (restart) clears result and end_time.
	t2 := t1.Add(time.Minute)
	k.apply(t, repo, StatusPending, 2, t2)
	got, err = repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Nil(t, got.Result)
	require.Nil(t, got.EndTime)
	require.Equal(t, 2, got.Attempt)

	hist, err := repo.History(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, hist, 4)
	want := []struct {
		from    Status
		to      Status
		attempt int
	}{{"", StatusPending, 0}, {StatusPending, StatusRunning, 1}, {StatusRunning, StatusFinished, 1}, {StatusFinished, StatusPending, 2}}
	for i, h := range hist {
		require.Equal(t, int64(i+1), h.Seq)
		require.Equal(t, want[i].from, deref(h.FromStatus))
		require.Equal(t, want[i].to, h.ToStatus)
		require.Equal(t, want[i].attempt, h.Attempt)
	}
	require.True(t, hist[2].At.Equal(t1))
	require.Equal(t, "TestFINISHED", hist[2].Reason)
}

func TestRecordTransitionValidation(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	at := time.Now()
	base := func() Transition { c := *k; return c.next(StatusRunning, 1, at) }

	for name, mod := range map[string]func(*Transition){
		"seq 1":        func(tr *Transition) { tr.Seq = 1 },
		"bad to":       func(tr *Transition) { tr.To = "DONE" },
		"bad from":     func(tr *Transition) { tr.From = "" },
		"no reason":    func(tr *Transition) { tr.Reason = "" },
		"zero at":      func(tr *Transition) { tr.At = time.Time{} },
		"no uid":       func(tr *Transition) { tr.TaskUID = "" },
		"invalid json": func(tr *Transition) { tr.To, tr.Result = StatusFinished, json.RawMessage(`{`) },
	} {
		tr := base()
		mod(&tr)
		err := repo.RecordTransition(ctx, tr)
		require.ErrorIs(t, err, ErrInvalidArgument, name)
		require.False(t, IsTransient(err))
	}
	tr := base()
	tr.To, tr.Result = StatusFinished, json.RawMessage(`"`+strings.Repeat("x", MaxResultSize)+`"`)
	require.ErrorIs(t, repo.RecordTransition(ctx, tr), ErrResultTooLarge)

	// Long free text is truncated, not rejected.
	k.apply(t, repo, StatusRunning, 1, at, func(tr *Transition) {
		tr.Message, tr.Progress = strings.Repeat("é", MaxMessageLen+10), strings.Repeat("p", 100)
	})
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, MaxMessageLen, len([]rune(got.Message)))
	require.Len(t, got.Progress, MaxProgressLen)

	require.ErrorIs(t, repo.RecordTransition(ctx, Transition{
		TaskUID: "missing", Seq: 2, From: StatusPending, To: StatusRunning, Attempt: 1, Reason: "r", At: at,
	}), ErrNotFound)
}

func TestRecordTransitionReplayIsIdempotent(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	at := time.Now()
	tr := k.apply(t, repo, StatusRunning, 1, at)
	paused := k.apply(t, repo, StatusPaused, 1, at)

	// Replays of recorded transitions (lost reply, outbox retry) are no-ops.
	require.NoError(t, repo.RecordTransition(ctx, tr))
	require.NoError(t, repo.RecordTransition(ctx, paused))
	hist, err := repo.History(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, hist, 3)
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, StatusPaused, got.Status, "a replay never rewinds the row")

	// Same seq, different content: a conflict, never an overwrite.
	conflict := paused
	conflict.To = StatusStopped
	err = repo.RecordTransition(ctx, conflict)
	require.ErrorIs(t, err, ErrStaleTransition)
	require.Contains(t, err.Error(), "already recorded as RUNNING->PAUSED")
	require.False(t, IsTransient(err))

	// A guard mismatch (wrong From) on the next seq is stale too.
	wrong := k.next(StatusRunning, 1, at)
	wrong.From = StatusRunning
	require.ErrorIs(t, repo.RecordTransition(ctx, wrong), ErrStaleTransition)
	// A gap in seq is stale.
	gap := Transition{TaskUID: "u1", Seq: 9, From: StatusPaused, PrevAttempt: 1, To: StatusRunning, Attempt: 1, Reason: "r", At: at}
	require.ErrorIs(t, repo.RecordTransition(ctx, gap), ErrStaleTransition)
	// A wrong PrevAttempt is stale.
	attempt := Transition{TaskUID: "u1", Seq: 4, From: StatusPaused, PrevAttempt: 7, To: StatusRunning, Attempt: 7, Reason: "r", At: at}
	require.ErrorIs(t, repo.RecordTransition(ctx, attempt), ErrStaleTransition)
}

func TestRecordTransitionRace(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	at := time.Now()
	for round := range 20 {
		uid := fmt.Sprintf("race-%d", round)
		k := createTask(t, repo, uid, "ns", uid, "demo")
		k.apply(t, repo, StatusRunning, 1, at)
		// Two writers believe they may move the task out of RUNNING at seq 3.
		a, b := *k, *k
		trs := []Transition{a.next(StatusPaused, 1, at), b.next(StatusStopped, 1, at)}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range trs {
			wg.Go(func() {
				<-start
				errs[i] = repo.RecordTransition(ctx, trs[i])
			})
		}
		close(start)
		wg.Wait()

		var winner Status
		switch {
		case errs[0] == nil && errs[1] != nil:
			winner = StatusPaused
			require.ErrorIs(t, errs[1], ErrStaleTransition)
		case errs[1] == nil && errs[0] != nil:
			winner = StatusStopped
			require.ErrorIs(t, errs[0], ErrStaleTransition)
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
			for range cycles {
				for _, to := range []Status{StatusRunning, StatusPaused} {
					if err := repo.RecordTransition(ctx, k.next(to, 1, at)); err != nil {
						errs <- err
						return
					}
				}
			}
			if err := repo.RecordTransition(ctx, k.next(StatusStopped, 1, at)); err != nil {
				errs <- err
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
	var total int64
	require.NoError(t, repo.db.WithContext(ctx).Raw(`SELECT count(*) FROM background_task_transitions`).Scan(&total).Error)
	require.Equal(t, tasks*want, total)
}
