package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/witness"
)

// The run's TaskQueues, in the load's namespace: short witness tasks start through queueLimited
// (paused once during the faults), and tasks that fail then retry through queueFair, shared by
// two tenants. Their limits are small so that tasks pile up and the limit is what holds them.
const (
	queueLimited = "chaos-q"
	queueFair    = "chaos-fair"
	tenantLabel  = "tenant"
)

// chaosQueues are the run's queues and their concurrency.
func chaosQueues() []v1alpha1.TaskQueue {
	return []v1alpha1.TaskQueue{
		{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: queueLimited}, Spec: v1alpha1.TaskQueueSpec{Concurrency: 2}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: queueFair}, Spec: v1alpha1.TaskQueueSpec{Concurrency: 2,
			Fairness: &v1alpha1.QueueFairness{Key: tenantLabel}}},
	}
}

// assignQueue puts 40% of the short tasks in queueLimited and 40% of those that fail then
// retry in queueFair (a third of them tenant b).
func assignQueue(r *rand.Rand, t *taskPlan) {
	switch {
	case t.shape == "short" && r.IntN(100) < 40:
		t.queue = queueLimited
	case t.shape == "fails, then retries succeed" && r.IntN(100) < 40:
		t.queue, t.tenant = queueFair, "a"
		if r.IntN(3) == 0 {
			t.tenant = "b"
		}
	}
}

// startQueues creates the run's queues.
func startQueues(ctx context.Context, e *env) error {
	for _, q := range chaosQueues() {
		if err := e.client.Create(ctx, &q); err != nil {
			return fmt.Errorf("create queue %s: %w", q.Name, err)
		}
	}
	return nil
}

// queuePause is one pause of a queue as the run saw it take effect: from when PostgreSQL's row
// said paused (the admission rounds read it there) until the resume was sent; held are the
// tasks that held a place then, read in the same statement (admissions take the queue row's
// lock, so none admitted before the pause is missing and none after it is listed).
type queuePause struct {
	queue         string
	paused, until time.Time
	held          map[string]bool
}

// queuePauser pauses queueLimited once, at `at` into the chaos phase, for `hold`, retrying its
// writes through API outages.
type queuePauser struct {
	c   client.Client
	db  *pgxpool.Pool
	log logr.Logger

	mu     sync.Mutex
	pauses []queuePause
}

func (p *queuePauser) run(ctx context.Context, start time.Time, at, hold time.Duration) {
	if !sleepCtx(ctx, time.Until(start.Add(at))) {
		return
	}
	if err := p.patch(ctx, `{"spec":{"paused":true}}`); err != nil {
		p.log.Info("cannot pause the queue", "queue", queueLimited, "error", err.Error())
		return
	}
	pause := queuePause{queue: queueLimited}
	for ctx.Err() == nil {
		var paused bool
		var held []string
		err := p.db.QueryRow(ctx, `SELECT q.paused, coalesce(array(SELECT uid FROM background_tasks
    WHERE namespace = q.namespace AND queue = q.name AND queue_state = 'admitted' AND deleted_at IS NULL), '{}')
FROM background_task_queues q WHERE q.namespace = $1 AND q.name = $2`, namespace, queueLimited).Scan(&paused, &held)
		if err == nil && paused {
			pause.paused = time.Now()
			pause.held = map[string]bool{}
			for _, uid := range held {
				pause.held[uid] = true
			}
			break
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	if !sleepCtx(ctx, hold) {
		return
	}
	pause.until = time.Now() // before the resume is sent: nothing may start before it
	if err := p.patch(ctx, `{"spec":{"paused":false}}`); err != nil {
		p.log.Info("cannot resume the queue", "queue", queueLimited, "error", err.Error())
	}
	p.mu.Lock()
	p.pauses = append(p.pauses, pause)
	p.mu.Unlock()
}

func (p *queuePauser) patch(ctx context.Context, body string) error {
	q := &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: queueLimited}}
	for {
		err := p.c.Patch(ctx, q, client.RawPatch("application/merge-patch+json", []byte(body)))
		if err == nil || ctx.Err() != nil {
			return err
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

func (p *queuePauser) taken() []queuePause {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pauses)
}

// checkQueues is invariant 9: (a) at no moment did more tasks of a queue do work than its
// concurrency, counted from the witness's steps (not from the operator's record); (b) no task
// that held no place when its queue's pause took effect did work while it was paused.
func checkQueues(execs map[string][]witness.Execution, queueOf map[string]string, interval map[string]time.Duration,
	limit map[string]int, pauses []queuePause, names map[string]string, during func(time.Time) (string, string)) result {
	r := result{id: "9", title: "no queue ran more tasks than its concurrency; no waiting task of a paused queue started"}
	byQueue := map[string]map[string][]witness.Span{}
	tasks := map[string]int{}
	for uid, q := range queueOf {
		if q == "" || len(execs[uid]) == 0 {
			continue
		}
		tasks[q]++
		if byQueue[q] == nil {
			byQueue[q] = map[string][]witness.Span{}
		}
		byQueue[q][uid] = witness.WorkSpans(execs[uid], interval[uid])
	}
	peaks := map[string]int{}
	for q, ss := range byQueue {
		for _, p := range witness.Peaks(ss) {
			peaks[q] = max(peaks[q], p.Tasks)
			if p.Tasks <= limit[q] {
				continue
			}
			fault, phrase := during(p.At)
			kind := "with no fault going on"
			if fault != "" {
				kind = "around " + fault
			}
			r.add(kind, example{task: taskLabel(names[p.Task], p.Task),
				what: fmt.Sprintf("queue %s: %d of its tasks worked at once at %s (concurrency %d)%s", q, p.Tasks, clock(p.At), limit[q], phrase)})
		}
	}
	for _, p := range pauses {
		for uid, q := range queueOf {
			if q != p.queue || p.held[uid] {
				continue
			}
			for _, s := range byQueue[q][uid] {
				if s.From.After(p.paused) && s.From.Before(p.until) {
					r.add("while paused", example{task: taskLabel(names[uid], uid),
						what: fmt.Sprintf("queue %s was paused from %s to %s, and this task, which held no place, did a step at %s",
							q, clock(p.paused), clock(p.until), clock(s.From))})
					break
				}
			}
		}
	}
	var parts []string
	for _, q := range slices.Sorted(maps.Keys(limit)) {
		parts = append(parts, fmt.Sprintf("%s: %d tasks, at most %d at once (concurrency %d)", q, tasks[q], peaks[q], limit[q]))
	}
	for _, p := range pauses {
		parts = append(parts, fmt.Sprintf("%s paused %.0f s with %d places held", p.queue, p.until.Sub(p.paused).Seconds(), len(p.held)))
	}
	if len(pauses) == 0 {
		parts = append(parts, "the planned pause did not take effect")
	}
	r.checked = strings.Join(parts, "; ")
	return r
}
