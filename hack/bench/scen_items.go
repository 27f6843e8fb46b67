package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// itemsParallelism is the bench object's spec.items.parallelism, and the ceiling's claim size.
const itemsParallelism = 64

// itemsFlushBatch is what the ceiling records in one statement: the runner writes at most this
// many outcomes at once (runner.itemFlushBatch).
const itemsFlushBatch = 512

// itemsResult is scenario 11: one BackgroundTask of n no-op items.
type itemsResult struct {
	n int
	// elapsed is from the create to the row FINISHED; ceiling is the same items through the
	// store's calls alone (seed, claim, record) in a fresh database.
	elapsed, ceiling time.Duration
	writes           apiWrites
	rssPeak          int64
	executions       int64 // item executions recorded (n when none ran twice)
	transitions      int64
	// firstClaim is when the first item was claimed, after the create (the run's start and the
	// seeding); lastRecord when the last outcome was recorded.
	firstClaim, lastRecord time.Duration
}

func (r itemsResult) itemsSec() float64   { return float64(r.n) / r.elapsed.Seconds() }
func (r itemsResult) ceilingSec() float64 { return float64(r.n) / r.ceiling.Seconds() }

// runItems measures scenario 11.
func runItems(ctx context.Context, e *env, n int) (*itemsResult, error) {
	res := &itemsResult{n: n}
	progressf("[items] PostgreSQL ceiling: %d items seeded, claimed by %d and recorded by %d", n, itemsParallelism, itemsFlushBatch)
	var err error
	if res.ceiling, err = itemsCeiling(ctx, e.pg, "items_ceiling", n); err != nil {
		return nil, err
	}
	st, err := e.newStage(ctx, "items", 16)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	const ns = benchNamespace
	apiBefore, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return nil, err
	}
	var peak atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go func() {
		for sampleCtx.Err() == nil {
			if rss, err := rssBytes(st.op.pid()); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			sleepCtx(sampleCtx, 100*time.Millisecond)
		}
	}()

	start := time.Now()
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "items"},
		Spec: v1alpha1.BackgroundTaskSpec{TaskName: "foreach", Params: &runtime.RawExtension{Raw: []byte(`{}`)},
			Items: &v1alpha1.ItemsSpec{Count: ptrInt32(int32(n)), Parallelism: itemsParallelism}},
	}
	if err := st.cp.client.Create(ctx, bt); err != nil {
		return nil, fmt.Errorf("items: create: %w", err)
	}
	if err := waitFor(ctx, "items", 10*time.Minute, func() (bool, string, error) {
		// The row's progress, not a count of the items: the bench must not load PostgreSQL.
		var status, progress string
		err := st.pool.QueryRow(ctx, `/*bench*/ SELECT coalesce(max(status), ''), coalesce(max(progress), '')
			FROM background_tasks WHERE uid = $1`, string(bt.UID)).Scan(&status, &progress)
		return status == "FINISHED", fmt.Sprintf("row %s, progress %s", status, progress), err
	}); err != nil {
		return nil, err
	}
	var end time.Time
	if err := st.pool.QueryRow(ctx, `/*bench*/ SELECT end_time FROM background_tasks WHERE uid = $1`, string(bt.UID)).Scan(&end); err != nil {
		return nil, fmt.Errorf("items: end time: %w", err)
	}
	res.elapsed = end.Sub(start)
	stopSampling()
	res.rssPeak = peak.Load()
	var first, last time.Time
	if err := st.pool.QueryRow(ctx, `/*bench*/ SELECT (SELECT sum(executions) FROM background_task_items WHERE task_uid = $1),
		count(*), min(at), max(at) FROM background_task_item_transitions WHERE task_uid = $1`, string(bt.UID)).
		Scan(&res.executions, &res.transitions, &first, &last); err != nil {
		return nil, fmt.Errorf("items: executions: %w", err)
	}
	res.firstClaim, res.lastRecord = first.Sub(start), last.Sub(start)
	sleepCtx(ctx, 2*time.Second) // the last status write
	apiAfter, err := scrapeAPIServer(ctx, st.cp.clientset)
	if err != nil {
		return nil, err
	}
	res.writes = writesFrom(apiAfter).minus(writesFrom(apiBefore))
	logf("items: %d items in %v (%.0f items/s; ceiling %.0f items/s, ×%.2f); first claim after %v, last record after %v; %.0f API writes; RSS peak %d MiB; %d executions, %d item transitions",
		n, res.elapsed.Round(time.Millisecond), res.itemsSec(), res.ceilingSec(), res.itemsSec()/res.ceilingSec(),
		res.firstClaim.Round(time.Millisecond), res.lastRecord.Round(time.Millisecond),
		res.writes.total(), res.rssPeak>>20, res.executions, res.transitions)
	return res, nil
}

// itemsCeiling runs n items through the store's own calls with nothing else: BeginItems seeds
// them, then claims of itemsParallelism and records of itemsFlushBatch outcomes, one after the
// other, as one run does.
func itemsCeiling(ctx context.Context, pg *postgres, dbName string, n int) (time.Duration, error) {
	url, pool, err := pg.newDatabase(ctx, dbName)
	if err != nil {
		return 0, err
	}
	pool.Close()
	repo, err := store.Open(ctx, store.Config{URL: url, MaxOpenConns: 4})
	if err != nil {
		return 0, fmt.Errorf("items ceiling: %w", err)
	}
	defer func() { _ = repo.Close() }()
	owner := store.Owner{Name: "ceiling", Epoch: 1}
	const uid = "items-ceiling"
	if _, _, err := repo.CreateTask(ctx, store.NewTask{UID: uid, Namespace: "ceiling", Name: uid, TaskName: "foreach",
		Desired: lifecycle.DesiredRunning, Owner: owner, At: time.Now()}); err != nil {
		return 0, fmt.Errorf("items ceiling: %w", err)
	}
	start := time.Now()
	if _, err := repo.BeginItems(ctx, uid, owner, 1, store.ItemPlan{Count: n}); err != nil {
		return 0, fmt.Errorf("items ceiling: %w", err)
	}
	var outcomes []store.ItemOutcome
	next := 0
	for {
		got, err := repo.ClaimItemsFrom(ctx, uid, owner, 1, itemsParallelism, next)
		if err != nil {
			return 0, fmt.Errorf("items ceiling: %w", err)
		}
		for _, it := range got {
			next = max(next, it.Index+1)
			outcomes = append(outcomes, store.ItemOutcome{Index: it.Index, Execution: it.Execution, Outcome: store.OutcomeSucceeded})
		}
		if len(outcomes) >= itemsFlushBatch || (len(got) == 0 && len(outcomes) > 0) {
			if _, err := repo.FinishItems(ctx, uid, owner, 1, 0, outcomes); err != nil {
				return 0, fmt.Errorf("items ceiling: %w", err)
			}
			outcomes = outcomes[:0]
		}
		if len(got) == 0 {
			return time.Since(start), nil
		}
	}
}

func ptrInt32(v int32) *int32 { return &v }

func writeItems(b *strings.Builder, r *results) {
	it := r.items
	if it == nil {
		return
	}
	md := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	md("## 11. Many items in one task")
	md("")
	md("One BackgroundTask of the built-in `foreach` type with `spec.items.count: %d` (no-op items) and `parallelism: %d`, on one operator: from the create to the row FINISHED, every item a row with its own transitions. The ceiling is the same items through the store's calls alone, in a fresh database and the same run: one `BeginItems` (the seeding), then claims of %d and records of %d outcomes one after the other, each one statement (the guarded update of the items and the insert of their transitions).",
		it.n, itemsParallelism, itemsParallelism, itemsFlushBatch)
	md("")
	md("| items | items/s | PostgreSQL ceiling | ratio | API writes for the object | operator RSS peak | executions | item transitions |")
	md("|---|---|---|---|---|---|---|---|")
	md("| %d | **%.0f** | %.0f items/s | ×%.2f | %.0f | %d MiB | %d | %d |", it.n, it.itemsSec(), it.ceilingSec(), it.itemsSec()/it.ceilingSec(),
		it.writes.total(), it.rssPeak>>20, it.executions, it.transitions)
	md("")
	md("Targets: ≥ 5,000 items/s and ≥ 0.5 of the ceiling. The API writes are the object's own (its phases and throttled `status.items`), whatever the number of items.")
	md("")
}
