package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// TestRecordTransitionsLeavesWhatOneAtATimeLeaves: the same lifecycle recorded in batches and
// one write at a time leaves the same rows and the same histories, column for column.
func TestRecordTransitionsLeavesWhatOneAtATimeLeaves(t *testing.T) {
	statements := &statementCounter{}
	repo := openRepo(t, srv.NewDatabase(t), Config{QueryTracer: statements})
	ctx := testCtx(t)
	const n = 4
	var single, batch []*tracker
	for i := range n {
		single = append(single, createTask(t, repo, fmt.Sprintf("single-%d", i), "ns", fmt.Sprintf("s%d", i), "demo"))
		batch = append(batch, createTask(t, repo, fmt.Sprintf("batch-%d", i), "ns", fmt.Sprintf("b%d", i), "demo"))
	}
	// Nanoseconds (both paths keep microseconds), in a zone whose offset has seconds (RFC 3339
	// offsets do not).
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("LMT", -(4*3600+56*60+2)))
	uids := func() []string {
		var out []string
		for i := range n {
			out = append(out, single[i].uid, batch[i].uid)
		}
		return out
	}
	progress := "3/10"
	steps := []func(k *tracker, i int) TransitionWrite{
		func(k *tracker, i int) TransitionWrite { // keeps the place in the queue
			w := k.write(t, lifecycle.Running, 1, t0.Add(time.Duration(i)*time.Millisecond))
			w.Progress, w.Span = &progress, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			return w
		},
		func(k *tracker, i int) TransitionWrite { // gives the place back, keeps the checkpoint
			if i%2 == 0 {
				w := k.write(t, lifecycle.Finished, 1, t0.Add(time.Minute))
				w.Result = json.RawMessage(fmt.Sprintf(`{"rows":%d,"note":"naïve"}`, i))
				if i == 2 {
					w.Result = json.RawMessage(`null`) // a JSON null, not SQL NULL
				}
				return w
			}
			return k.write(t, lifecycle.Failed, 1, t0.Add(time.Minute), func(ev *lifecycle.Event) {
				ev.Message = "boom\x00\xff" // made storable the same way on both paths
				ev.RetryAt = t0.Add(2 * time.Minute)
			})
		},
		func(k *tracker, _ int) TransitionWrite { // a new attempt: drops the checkpoint
			return k.write(t, lifecycle.Pending, 2, t0.Add(3*time.Minute), func(ev *lifecycle.Event) { ev.RestartGeneration = 3 })
		},
	}
	require.NoError(t, repo.db.WithContext(ctx).Exec(`UPDATE background_tasks SET queue = 'q', queue_state = 'admitted',
  queue_waiting_since = now() WHERE uid IN ?`, uids()).Error)
	for st, step := range steps {
		if st == 1 {
			for _, uid := range uids() {
				require.NoError(t, repo.SaveCheckpoint(ctx, uid, owner1, 1, json.RawMessage(`{"at":7}`)))
			}
		}
		var ws []TransitionWrite
		for i := range n {
			w := step(single[i], i)
			require.NoError(t, repo.RecordTransition(ctx, w))
			single[i].advance(w)
			ws = append(ws, step(batch[i], i))
		}
		before := statements.n.Load()
		for i, err := range repo.RecordTransitions(ctx, ws) {
			require.NoError(t, err)
			batch[i].advance(ws[i])
		}
		require.Equal(t, int64(1), statements.n.Load()-before, "step %d: one statement, not write by write", st)
		for i := range n {
			s, err := repo.GetTask(ctx, single[i].uid)
			require.NoError(t, err)
			b, err := repo.GetTask(ctx, batch[i].uid)
			require.NoError(t, err)
			require.Equal(t, normalize(s.Record()), normalize(b.Record()))
			require.Equal(t, s.Progress, b.Progress)
			require.Equal(t, s.RunSpan, b.RunSpan)
			require.Equal(t, string(s.Result), string(b.Result))
			require.Equal(t, s.Checkpoint, b.Checkpoint)
			require.Equal(t, s.CheckpointAttempt, b.CheckpointAttempt)
			require.Equal(t, s.QueueState, b.QueueState)
			require.Equal(t, s.ObservedRestartGeneration, b.ObservedRestartGeneration)
			// What the step changed, so that the comparison above cannot pass on columns
			// neither path touched.
			require.Equal(t, []string{"admitted", "", ""}[st], b.QueueState, "step %d", st)
			require.Equal(t, []bool{false, true, false}[st], b.Checkpoint != nil, "step %d", st)
			if st == 1 && i == 2 {
				require.Equal(t, "null", string(b.Result))
			}
		}
	}
	for i := range n {
		sh, err := repo.History(ctx, single[i].uid)
		require.NoError(t, err)
		bh, err := repo.History(ctx, batch[i].uid)
		require.NoError(t, err)
		require.Len(t, bh, len(sh))
		for j := 1; j < len(sh); j++ { // seq 1 is the creation, at its own time.Now
			sh[j].ID, sh[j].TaskUID, bh[j].ID, bh[j].TaskUID = 0, "", 0, ""
			require.Equal(t, sh[j], bh[j], "history row %d of task %d", j, i)
		}
	}
}

// TestRecordTransitionsExplainsEachWriteOnItsOwn: in one batch, every write gets the answer
// RecordTransition would give it, and a write that cannot be recorded (fenced, stale, deleted,
// missing, malformed, one the table's constraints refuse) does not hold back the others.
func TestRecordTransitionsExplainsEachWriteOnItsOwn(t *testing.T) {
	statements := &statementCounter{}
	repo := openRepo(t, srv.NewDatabase(t), Config{QueryTracer: statements})
	ctx := testCtx(t)
	at := time.Now()
	ks := map[string]*tracker{}
	for _, uid := range []string{"good", "replayed", "fenced", "stale", "deleted", "malformed"} {
		ks[uid] = createTask(t, repo, uid, "ns", uid, "demo")
	}
	replayed := ks["replayed"].apply(t, repo, lifecycle.Running, 1, at)
	_, err := repo.Claim(ctx, "fenced", owner2, owner1.Epoch)
	require.NoError(t, err)
	stale := ks["stale"].write(t, lifecycle.Running, 1, at)
	ks["stale"].apply(t, repo, lifecycle.Stopped, 0, at) // the row moved on another way
	require.NoError(t, repo.MarkDeleted(ctx, "deleted"))
	k := createTask(t, repo, "too-big", "ns", "too-big", "demo")
	k.apply(t, repo, lifecycle.Running, 1, at)
	tooBig := k.write(t, lifecycle.Finished, 1, at)
	tooBig.Result = json.RawMessage(`{"blob":"` + strings.Repeat("x", 70<<10) + `"}`) // past the result's CHECK
	malformed := ks["malformed"].write(t, lifecycle.Running, 1, at)
	malformed.Transition.Seq = 9
	missing := ks["good"].write(t, lifecycle.Running, 1, at)
	missing.UID = "missing"

	// First without a write the table refuses: each write meets the batch's own guard.
	ws := []TransitionWrite{
		ks["good"].write(t, lifecycle.Running, 1, at),
		replayed,
		ks["fenced"].write(t, lifecycle.Running, 1, at),
		stale,
		ks["deleted"].write(t, lifecycle.Running, 1, at),
		malformed,
		missing,
		ks["good"].write(t, lifecycle.Running, 1, at), // the same task twice
	}
	before := statements.n.Load()
	errs := repo.RecordTransitions(ctx, ws)
	require.Len(t, errs, len(ws))
	// The batch of the six well-formed writes of distinct tasks, then one look at each of the
	// five that matched nothing; the malformed write and the repeat cost none.
	require.Equal(t, int64(1+5), statements.n.Load()-before, "the batch was not written write by write")
	require.NoError(t, errs[0], "good")
	require.NoError(t, errs[1], "the owner's own replay (a lost reply) is a no-op")
	require.ErrorIs(t, errs[2], ErrFenced)
	require.ErrorIs(t, errs[3], ErrConflict)
	require.ErrorIs(t, errs[4], ErrDeleted)
	require.ErrorIs(t, errs[5], ErrInvalidArgument)
	require.ErrorIs(t, errs[6], ErrNotFound)
	require.ErrorIs(t, errs[7], ErrInvalidArgument, "a batch holds one write per task")

	// Then with one: the statement fails, and each write is tried on its own.
	ks["good"].advance(ws[0])
	ws = []TransitionWrite{tooBig, ks["good"].write(t, lifecycle.Paused, 1, at), ks["fenced"].write(t, lifecycle.Running, 1, at)}
	errs = repo.RecordTransitions(ctx, ws)
	require.Error(t, errs[0], "a result past the CHECK")
	require.False(t, IsTransient(errs[0]), "refused for good, not retried")
	require.NoError(t, errs[1], "written although the batch held a write refused for good")
	require.ErrorIs(t, errs[2], ErrFenced)

	got, err := repo.GetTask(ctx, "good")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Paused, got.Status)
	hist, err := repo.History(ctx, "good")
	require.NoError(t, err)
	require.Len(t, hist, 3, "each written once")
	got, err = repo.GetTask(ctx, "too-big")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Running, got.Status, "the refused write changed nothing")
	hist, err = repo.History(ctx, "replayed")
	require.NoError(t, err)
	require.Len(t, hist, 2, "a replay appends nothing")
}

// TestRecordTransitionsFailsEveryWriteForTheMoment: a batch cut short (here its time runs out
// waiting for a row another transaction holds) gives every write the transient error, which the
// journal retries, and no write a verdict; the retry then records them all.
func TestRecordTransitionsFailsEveryWriteForTheMoment(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	a := createTask(t, repo, "a", "ns", "a", "demo")
	b := createTask(t, repo, "b", "ns", "b", "demo")
	ws := []TransitionWrite{a.write(t, lifecycle.Running, 1, time.Now()), b.write(t, lifecycle.Running, 1, time.Now())}

	holder := repo.db.WithContext(ctx).Begin()
	require.NoError(t, holder.Error)
	require.NoError(t, holder.Exec(`SELECT 1 FROM background_tasks WHERE uid = 'a' FOR UPDATE`).Error)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	errs := repo.RecordTransitions(short, ws)
	cancel()
	for i, err := range errs {
		require.Error(t, err, "write %d", i)
		require.True(t, IsTransient(err), "write %d: want transient, got %v", i, err)
	}
	require.NoError(t, holder.Rollback().Error)

	// A batch refused for good is retried write by write; when its time runs out on the way
	// (here on a held row), the writes after are cut short, not refused for the batch's reason.
	big := createTask(t, repo, "big", "ns", "big", "demo")
	big.apply(t, repo, lifecycle.Running, 1, time.Now())
	tooBig := big.write(t, lifecycle.Finished, 1, time.Now())
	tooBig.Result = json.RawMessage(`{"blob":"` + strings.Repeat("x", 70<<10) + `"}`)
	c := createTask(t, repo, "c", "ns", "c", "demo")
	free := createTask(t, repo, "free", "ns", "free", "demo")
	holder = repo.db.WithContext(ctx).Begin()
	require.NoError(t, holder.Exec(`SELECT 1 FROM background_tasks WHERE uid = 'c' FOR UPDATE`).Error)
	short, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
	errs = repo.RecordTransitions(short, []TransitionWrite{tooBig, c.write(t, lifecycle.Running, 1, time.Now()),
		free.write(t, lifecycle.Running, 1, time.Now())})
	cancel()
	require.NoError(t, holder.Rollback().Error)
	require.False(t, IsTransient(errs[0]), "the too big result: refused for good")
	require.True(t, IsTransient(errs[1]), "the held row: cut short, got %v", errs[1])
	require.True(t, IsTransient(errs[2]), "after the time ran out: cut short, got %v", errs[2])

	for _, err := range repo.RecordTransitions(ctx, ws) {
		require.NoError(t, err)
	}
	for _, uid := range []string{"a", "b"} {
		hist, err := repo.History(ctx, uid)
		require.NoError(t, err)
		require.Len(t, hist, 2, "%s: written once", uid)
	}
}
