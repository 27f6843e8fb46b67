package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// statementCounter is a pgx tracer counting statements sent to PostgreSQL.
// With pgx's statement cache each one is one network round trip (a
// statement's first use on a connection adds one prepare).
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// BenchmarkRecordTransition measures the hot path: transitions per second and
// statements per transition, for one writer and for 16 concurrent writers
// (each the single writer of its own task, as in the controller).
func BenchmarkRecordTransition(b *testing.B) {
	url := srv.NewDatabase(b)
	var runs atomic.Int64 // unique task uids across benchmark invocations

	for _, bc := range []struct {
		name        string
		writers     int
		prepareStmt bool
	}{
		{"single-writer", 1, false},
		{"16-writers", 16, false},
		{"single-writer-gorm-preparestmt", 1, true},
		{"16-writers-gorm-preparestmt", 16, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			counter := &statementCounter{}
			repo := openRepo(b, url, Config{MaxOpenConns: 20, QueryTracer: counter, prepareStmt: bc.prepareStmt})
			ctx := testCtx(b)
			trackers := make([]*tracker, bc.writers)
			for i := range trackers {
				uid := fmt.Sprintf("bench-%d-%d", runs.Add(1), i)
				trackers[i] = createTask(b, repo, uid, "bench", uid, "bench")
			}
			at := time.Now()
			record := func(k *tracker, n int) error {
				for j := range n {
					to := lifecycle.Running
					if k.rec.Status == lifecycle.Running {
						to = lifecycle.Paused
					}
					w, err := writeFor(k, to, at.Add(time.Duration(j)))
					if err == nil {
						err = repo.RecordTransition(ctx, w)
					}
					if err != nil {
						return err
					}
					k.advance(w)
				}
				return nil
			}

			counter.n.Store(0)
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make([]error, bc.writers)
			for i, k := range trackers {
				n := b.N / bc.writers
				if i < b.N%bc.writers {
					n++
				}
				wg.Go(func() { errs[i] = record(k, n) })
			}
			wg.Wait()
			b.StopTimer()
			for _, err := range errs {
				require.NoError(b, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
			b.ReportMetric(float64(counter.n.Load())/float64(b.N), "stmts/transition")
		})
	}
}

// BenchmarkRecordTransitions measures the batched path the journal takes: one writer records
// the next transition of each of `tasks` tasks in one statement, over and over; transitions per
// second and statements per transition against BenchmarkRecordTransition's single writer.
func BenchmarkRecordTransitions(b *testing.B) {
	url := srv.NewDatabase(b)
	var runs atomic.Int64
	for _, tasks := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("batch-%d", tasks), func(b *testing.B) {
			counter := &statementCounter{}
			repo := openRepo(b, url, Config{MaxOpenConns: 4, QueryTracer: counter})
			ctx := testCtx(b)
			trackers := make([]*tracker, tasks)
			for i := range trackers {
				uid := fmt.Sprintf("batch-%d-%d", runs.Add(1), i)
				trackers[i] = createTask(b, repo, uid, "bench", uid, "bench")
			}
			at := time.Now()
			counter.n.Store(0)
			b.ResetTimer()
			ws := make([]TransitionWrite, 0, tasks)
			for done := 0; done < b.N; done += len(ws) {
				ws = ws[:0]
				for _, k := range trackers[:min(tasks, b.N-done)] {
					to := lifecycle.Running
					if k.rec.Status == lifecycle.Running {
						to = lifecycle.Paused
					}
					w, err := writeFor(k, to, at.Add(time.Duration(done)))
					require.NoError(b, err)
					ws = append(ws, w)
				}
				for i, err := range repo.RecordTransitions(ctx, ws) {
					require.NoError(b, err)
					trackers[i].advance(ws[i])
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
			b.ReportMetric(float64(counter.n.Load())/float64(b.N), "stmts/transition")
		})
	}
}

// BenchmarkItems times the three statements of a run of items: seeding 10,000 items ($ITEMS), claiming
// them 64 at a time (from past the last claim) and recording 512 outcomes at a time.
func BenchmarkItems(b *testing.B) {
	url := srv.NewDatabase(b)
	repo := openRepo(b, url, Config{MaxOpenConns: 4})
	ctx := testCtx(b)
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("ITEMS")); err == nil {
		n = v // ITEMS=100000 for a large task
	}
	var seed, claim, finish time.Duration
	for i := range b.N {
		uid := fmt.Sprintf("items-%d", i)
		createTask(b, repo, uid, "bench", uid, "bench")
		t0 := time.Now()
		_, err := repo.BeginItems(ctx, uid, owner1, 1, ItemPlan{Count: n})
		require.NoError(b, err)
		seed += time.Since(t0)
		var outcomes []ItemOutcome
		next := 0
		for {
			t1 := time.Now()
			got, err := repo.ClaimItemsFrom(ctx, uid, owner1, 1, 64, next)
			require.NoError(b, err)
			claim += time.Since(t1)
			for _, it := range got {
				next = max(next, it.Index+1)
				outcomes = append(outcomes, ItemOutcome{Index: it.Index, Execution: it.Execution, Outcome: OutcomeSucceeded})
			}
			if len(outcomes) >= 512 || (len(got) == 0 && len(outcomes) > 0) {
				t2 := time.Now()
				_, err := repo.FinishItems(ctx, uid, owner1, 1, 0, outcomes)
				require.NoError(b, err)
				finish += time.Since(t2)
				outcomes = outcomes[:0]
			}
			if len(got) == 0 {
				break
			}
		}
	}
	b.ReportMetric(float64(seed.Microseconds())/float64(b.N)/1000, "seed-ms/op")
	b.ReportMetric(float64(claim.Microseconds())/float64(b.N*n/64), "claim-us/64")
	b.ReportMetric(float64(finish.Microseconds())/float64(b.N*n/512), "finish-us/512")
	b.ReportMetric(float64(b.N*n)/(seed+claim+finish).Seconds(), "items/s")
}
