package main

import (
	"context"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/store"
)

// pgCeiling inserts n task rows (with their seq-1 history) and records transitions more
// guarded transitions (spread evenly, ending FINISHED), workers goroutines at a time, in a
// fresh database: the PostgreSQL ceiling for taskpilot's write mix, through the store's own
// calls (store.Repository CreateTask and RecordTransition, what the journal calls) with
// nothing else running.
func pgCeiling(ctx context.Context, pg *postgres, dbName string, n, transitions, workers int) (ceiling, error) {
	url, pool, err := pg.newDatabase(ctx, dbName)
	if err != nil {
		return ceiling{}, err
	}
	pool.Close()
	repo, err := store.Open(ctx, store.Config{URL: url, MaxOpenConns: workers})
	if err != nil {
		return ceiling{}, fmt.Errorf("migrate ceiling database: %w", err)
	}
	defer func() { _ = repo.Close() }()
	start := time.Now()
	err = parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		return ceilingTask(ctx, repo, fmt.Sprintf("ceil-%06d", i), share(transitions, n, i))
	})
	if err != nil {
		return ceiling{}, err
	}
	el := time.Since(start)
	return ceiling{
		tasks: n, writes: n + transitions, elapsed: el,
		perTask:  fmt.Sprintf("1 insert + %.2f guarded update+insert (one statement each)", float64(transitions)/float64(n)),
		tasksSec: float64(n) / el.Seconds(),
	}, nil
}

func ceilingTask(ctx context.Context, repo *store.Repository, uid string, k int) error {
	owner := store.Owner{Name: "ceiling", Epoch: 1}
	if _, _, err := repo.CreateTask(ctx, store.NewTask{
		UID: uid, Namespace: "ceiling", Name: uid, TaskName: "noop", Desired: lifecycle.DesiredRunning, Owner: owner, At: time.Now(),
	}); err != nil {
		return fmt.Errorf("ceiling create row: %w", err)
	}
	rec, _ := lifecycle.Create(time.Now(), 0)
	for j := range k {
		to := lifecycle.Running
		switch {
		case j == k-1:
			to = lifecycle.Finished
		case rec.Status == lifecycle.Running:
			to = lifecycle.Paused
		}
		tr, err := lifecycle.Next(rec, lifecycle.Event{To: to, Attempt: 1, Reason: "Bench", At: time.Now()})
		if err != nil {
			return fmt.Errorf("ceiling transition: %w", err)
		}
		w := store.TransitionWrite{UID: uid, Owner: owner, Prev: rec, Transition: tr}
		if to == lifecycle.Finished {
			w.Result = []byte(`{}`)
		}
		if err := repo.RecordTransition(ctx, w); err != nil {
			return fmt.Errorf("ceiling transition %s seq %d: %w", uid, tr.Seq, err)
		}
		rec = lifecycle.Apply(rec, tr)
	}
	return nil
}
