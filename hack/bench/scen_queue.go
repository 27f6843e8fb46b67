package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// queueResult is scenario 9: what a TaskQueue costs and how it shares.
type queueResult struct {
	// n noop tasks without a queue, then n through one queue of concurrency 64, same operator:
	// tasks/s of each (created -> every row FINISHED), and the queue's admission rounds.
	n, concurrency int
	plain, queued  float64
	admitted       int64
	// Fairness: big tasks of one tenant created first, then small of another, through a queue
	// of concurrency fairConcurrency shared by the label tenant; bigBeforeSmall is how many of
	// the big tenant's tasks started before the small tenant's last one did.
	big, small, fairConcurrency int
	bigBeforeSmall              int
	smallWaitMax, bigWaitP50    time.Duration
}

func (r queueResult) ratio() float64 { return r.queued / r.plain }

// runQueue measures scenario 9 on one operator.
func runQueue(ctx context.Context, e *env, n int) (*queueResult, error) {
	res := &queueResult{n: n, concurrency: 64, big: 200, small: 10, fairConcurrency: 4}
	st, err := e.newStage(ctx, "queue", n+res.big+res.small+16)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	const ns = benchNamespace
	noop := func(queue string) func(int) taskSpec {
		return func(int) taskSpec {
			return taskSpec{taskName: "noop", params: `{}`, state: v1alpha1.DesiredRunning, queue: queue}
		}
	}
	throughput := func(prefix, queue string, done int) (float64, error) {
		start := time.Now()
		if err := createTasks(ctx, st.cp.client, ns, prefix, n, e.opts.workers, noop(queue)); err != nil {
			return 0, err
		}
		if err := waitFor(ctx, "queue: "+prefix, 10*time.Minute, func() (bool, string, error) {
			rows, err := countStatus(ctx, st.pool, ns, "FINISHED")
			return rows >= done, fmt.Sprintf("rows FINISHED %d/%d", rows, done), err
		}); err != nil {
			return 0, err
		}
		var last time.Time
		if err := st.pool.QueryRow(ctx, `/*bench*/ SELECT max(end_time) FROM background_tasks WHERE namespace = $1 AND name LIKE $2`,
			ns, prefix+"-%").Scan(&last); err != nil {
			return 0, fmt.Errorf("queue: last end: %w", err)
		}
		return float64(n) / last.Sub(start).Seconds(), nil
	}
	progressf("[queue] %d noop tasks without a queue", n)
	if res.plain, err = throughput("qa", "", n); err != nil {
		return nil, err
	}
	if err := st.cp.client.Create(ctx, &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
		Spec: v1alpha1.TaskQueueSpec{Concurrency: int32(res.concurrency)}}); err != nil {
		return nil, fmt.Errorf("queue: create: %w", err)
	}
	sleepCtx(ctx, 2*time.Second) // the leader writes the queue's row
	progressf("[queue] %d noop tasks through a queue of concurrency %d", n, res.concurrency)
	if res.queued, err = throughput("qb", "bench", 2*n); err != nil {
		return nil, err
	}
	if err := st.pool.QueryRow(ctx, `/*bench*/ SELECT admitted FROM background_task_queues WHERE namespace = $1 AND name = 'bench'`, ns).
		Scan(&res.admitted); err != nil {
		return nil, fmt.Errorf("queue: admitted: %w", err)
	}

	// Fairness.
	if err := st.cp.client.Create(ctx, &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fair"},
		Spec: v1alpha1.TaskQueueSpec{Concurrency: int32(res.fairConcurrency),
			Fairness: &v1alpha1.QueueFairness{Key: "tenant"}}}); err != nil {
		return nil, fmt.Errorf("queue: create fair: %w", err)
	}
	sleepCtx(ctx, 2*time.Second)
	sleep := func(tenant string) func(int) taskSpec {
		return func(int) taskSpec {
			return taskSpec{taskName: "sleep", params: `{"duration":"1s","tick":"100ms"}`, state: v1alpha1.DesiredRunning,
				queue: "fair", labels: map[string]string{"tenant": tenant}}
		}
	}
	progressf("[queue] fairness: %d tasks of tenant big, then %d of tenant small, concurrency %d", res.big, res.small, res.fairConcurrency)
	if err := createTasks(ctx, st.cp.client, ns, "big", res.big, e.opts.workers, sleep("big")); err != nil {
		return nil, err
	}
	if err := createTasks(ctx, st.cp.client, ns, "small", res.small, e.opts.workers, sleep("small")); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "queue: fairness", 10*time.Minute, func() (bool, string, error) {
		rows, err := countStatus(ctx, st.pool, ns, "FINISHED")
		want := 2*n + res.big + res.small
		return rows >= want, fmt.Sprintf("rows FINISHED %d/%d", rows, want), err
	}); err != nil {
		return nil, err
	}
	rows, err := st.pool.Query(ctx, `/*bench*/ SELECT fair_value, start_time, queue_admitted_at - queue_waiting_since
FROM background_tasks WHERE namespace = $1 AND queue = 'fair' ORDER BY start_time`, ns)
	if err != nil {
		return nil, fmt.Errorf("queue: fairness rows: %w", err)
	}
	defer rows.Close()
	bigStarted, smallLeft := 0, res.small
	var bigWaits []time.Duration
	for rows.Next() {
		var tenant string
		var started time.Time
		var wait time.Duration
		if err := rows.Scan(&tenant, &started, &wait); err != nil {
			return nil, fmt.Errorf("queue: fairness rows: %w", err)
		}
		switch tenant {
		case "big":
			bigWaits = append(bigWaits, wait)
			if smallLeft > 0 {
				bigStarted++
			}
		case "small":
			smallLeft--
			res.smallWaitMax = max(res.smallWaitMax, wait)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: fairness rows: %w", err)
	}
	res.bigBeforeSmall = bigStarted
	res.bigWaitP50 = summarize(bigWaits).p50
	logf("queue: %.0f tasks/s without a queue, %.0f through one (×%.2f); fairness: %d big tasks started before the last small one, small wait max %v, big p50 %v",
		res.plain, res.queued, res.ratio(), res.bigBeforeSmall, res.smallWaitMax.Round(time.Millisecond), res.bigWaitP50.Round(time.Millisecond))
	return res, nil
}

func writeQueue(b *strings.Builder, r *results) {
	q := r.queue
	if q == nil {
		return
	}
	md := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	md("## 10. Queues: the cost of global admission, and fairness")
	md("")
	md("One operator. %d `noop` tasks without a queue, then %d through a TaskQueue of concurrency %d (every start is admitted by PostgreSQL under the queue row's lock: the task asks for a place, an admission round gives the free places out, the task asks again and starts); throughput from the first create to the last row FINISHED.", q.n, q.n, q.concurrency)
	md("")
	md("| without a queue | through a queue | ratio | admissions recorded |")
	md("|---|---|---|---|")
	md("| %.0f tasks/s | %.0f tasks/s | ×%.2f | %d |", q.plain, q.queued, q.ratio(), q.admitted)
	md("")
	md("Fairness: %d `sleep` tasks (1 s) of tenant `big` created first, then %d of tenant `small`, through a queue of concurrency %d with `fairness.key: tenant`. The small tenant's last task started after **%d** of the big tenant's (target: before its 20th; without fairness, after all %d); the small tenant's longest wait was %s, the big tenant's median wait %s.",
		q.big, q.small, q.fairConcurrency, q.bigBeforeSmall, q.big, q.smallWaitMax.Round(time.Millisecond), q.bigWaitP50.Round(time.Millisecond))
	md("")
}
