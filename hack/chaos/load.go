package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/witness"
)

// taskPlan is one BackgroundTask of the load.
type taskPlan struct {
	name       string
	shape      string // what kind of work, for the report
	taskName   string
	params     string // JSON
	maxRetries int32
	timeout    time.Duration // 0: none
	state      v1alpha1.DesiredState
	createAt   time.Duration // offset from the start of the chaos phase
	// interval is the length of one witness step (0 for built-ins): redone work in seconds.
	interval time.Duration
	// queue is the TaskQueue it starts through ("" for none); tenant its fairness label.
	queue, tenant string
	// items and parallelism make it a task with items (spec.items); fixed: its actions are
	// planned, not drawn (planActions leaves it alone).
	items, parallelism int32
	fixed              bool
}

// The task with items of every run (invariant 10): 2000 items of 200 ms, 8 at a time, so that
// about a minute of item work lives through the faults; paused once for 10 s.
const (
	itemsTaskName    = "chaos-items"
	itemsCount       = 2000
	itemsParallelism = 8
	itemsInterval    = 200 * time.Millisecond
	itemsPauseAfter  = 20 * time.Second
	itemsPausedFor   = 10 * time.Second
)

// itemsTask is the plan of the task with items, created at createAt.
func itemsTask(createAt time.Duration) taskPlan {
	return taskPlan{name: itemsTaskName, shape: fmt.Sprintf("items (%d, %d at a time)", itemsCount, itemsParallelism),
		taskName: witness.ItemsTaskType, params: fmt.Sprintf(`{"interval":%q}`, itemsInterval),
		state: v1alpha1.DesiredRunning, createAt: createAt, items: itemsCount, parallelism: itemsParallelism, fixed: true}
}

// shape is a kind of task and its share of the load.
type shape struct {
	name   string
	weight int
	make   func(r *rand.Rand, t *taskPlan)
}

// shapes is the mix of the load: mostly witness tasks (the checks need their record) of every
// lifecycle path the checks cover, plus the built-in types so the real ones are exercised too.
func shapes() []shape {
	w := func(t *taskPlan, p witness.Params) {
		t.taskName = witness.TaskType
		t.interval = time.Duration(p.Interval)
		t.params = fmt.Sprintf(`{"steps":%d,"interval":%q,"checkpointEvery":%d,"failAttempts":%d,"failAtStep":%d}`,
			p.Steps, time.Duration(p.Interval), p.CheckpointEvery, p.FailAttempts, p.FailAtStep)
	}
	between := func(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }
	return []shape{
		{"short", 25, func(r *rand.Rand, t *taskPlan) {
			w(t, witness.Params{Steps: between(r, 1, 3), Interval: ms(200)})
		}},
		{"long, checkpoints", 25, func(r *rand.Rand, t *taskPlan) {
			w(t, witness.Params{Steps: between(r, 15, 45), Interval: ms(1000), CheckpointEvery: between(r, 1, 5)})
		}},
		{"long, no checkpoint", 6, func(r *rand.Rand, t *taskPlan) {
			w(t, witness.Params{Steps: between(r, 10, 25), Interval: ms(1000)})
		}},
		{"fails, then retries succeed", 10, func(r *rand.Rand, t *taskPlan) {
			steps := between(r, 4, 10)
			t.maxRetries = int32(between(r, 2, 3))
			w(t, witness.Params{Steps: steps, Interval: ms(500), CheckpointEvery: 2,
				FailAttempts: between(r, 1, int(t.maxRetries)), FailAtStep: r.IntN(steps)})
		}},
		{"fails every retry", 3, func(r *rand.Rand, t *taskPlan) {
			t.maxRetries = 1
			w(t, witness.Params{Steps: 4, Interval: ms(300), FailAttempts: 1000, FailAtStep: r.IntN(4)})
		}},
		{"times out", 6, func(r *rand.Rand, t *taskPlan) {
			t.timeout = time.Duration(between(r, 6, 12)) * time.Second
			t.maxRetries = int32(r.IntN(2))
			w(t, witness.Params{Steps: 100, Interval: ms(1000), CheckpointEvery: 2})
		}},
		{"noop", 10, func(_ *rand.Rand, t *taskPlan) { t.taskName, t.params = "noop", `{}` }},
		{"countdown", 8, func(r *rand.Rand, t *taskPlan) {
			t.taskName = "countdown"
			t.params = fmt.Sprintf(`{"from":%d,"interval":"1s","checkpointEvery":%d}`, between(r, 10, 40), between(r, 1, 3))
		}},
		{"sleep", 7, func(r *rand.Rand, t *taskPlan) {
			t.taskName = "sleep"
			t.params = fmt.Sprintf(`{"duration":"%ds","tick":"1s"}`, between(r, 10, 40))
		}},
	}
}

func ms(n int) runner.Duration { return runner.Duration(time.Duration(n) * time.Millisecond) }

// planTasks draws n tasks: shape by weight, created at a steady rate over createOver, 5% of them
// created Paused (a user staging work).
func planTasks(r *rand.Rand, n int, createOver time.Duration) []taskPlan {
	sh := shapes()
	total := 0
	for _, s := range sh {
		total += s.weight
	}
	tasks := make([]taskPlan, n)
	for i := range tasks {
		t := &tasks[i]
		t.name = fmt.Sprintf("chaos-%04d", i)
		t.createAt = time.Duration(int64(createOver) * int64(i) / int64(max(n, 1)))
		t.state = v1alpha1.DesiredRunning
		if r.IntN(100) < 5 {
			t.state = v1alpha1.DesiredPaused
		}
		pick := r.IntN(total)
		for _, s := range sh {
			if pick < s.weight {
				t.shape = s.name
				s.make(r, t)
				break
			}
			pick -= s.weight
		}
		assignQueue(r, t)
	}
	return tasks
}
