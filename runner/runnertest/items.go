package runnertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/taskpilot/taskpilot/runner"
)

// Items is an in-memory runner.ItemSource, for testing a task type with items
// (runner.RegisterItems) the way the operator runs it, without PostgreSQL: pass it to a run
// with WithItems, and read what happened with Counts and Executions. The same Items may serve
// several runs one after the other (a pause, a stop and a new run, a retry with WithAttempt),
// as the operator's rows do.
type Items struct {
	parallelism, maxRetries int
	mu                      sync.Mutex
	items                   []memItem
}

type memItem struct {
	value      json.RawMessage
	state      string
	executions int
	failures   int
	lastError  string
	attempt    int
}

// NewItems returns count items without values (spec.items.count).
func NewItems(count, parallelism, maxRetries int) *Items {
	return &Items{parallelism: parallelism, maxRetries: maxRetries, items: make([]memItem, count)}
}

// NewItemList returns an item per value, encoded as JSON (spec.items.list).
func NewItemList(parallelism, maxRetries int, values ...any) *Items {
	it := NewItems(len(values), parallelism, maxRetries)
	for i, v := range values {
		raw, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("runnertest: encode item %d: %v", i, err))
		}
		it.items[i].value = raw
	}
	return it
}

// WithItems runs the task with items (its BackgroundTask's spec.items).
func WithItems(items *Items) Option { return func(s *settings) { s.items = items } }

// Counts are the items by state.
func (m *Items) Counts() runner.ItemCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	var c runner.ItemCounts
	for i, it := range m.items {
		switch it.state {
		case "", "pending":
			c.Pending++
		case "running":
			c.Running++
		case "succeeded":
			c.Succeeded++
		case "failed":
			c.Failed++
			c.FirstFailures = append(c.FirstFailures, runner.ItemFailure{Index: i, Error: it.lastError})
		}
	}
	return c
}

// Executions is how often item idx was started.
func (m *Items) Executions(idx int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.items[idx].executions
}

// bind returns the source of a run of attempt.
func (m *Items) bind(attempt int) runner.ItemSource {
	return &memSource{m: m, attempt: attempt}
}

type memSource struct {
	m       *Items
	attempt int
}

func (s *memSource) Parallelism() int { return s.m.parallelism }

func (s *memSource) Begin(context.Context) (runner.ItemCounts, error) {
	m := s.m
	m.mu.Lock()
	for i := range m.items {
		it := &m.items[i]
		switch {
		case it.state == "running": // interrupted: its failures count on
			it.state = "pending"
		case it.state == "failed" && it.attempt < s.attempt: // the task's retry
			it.state, it.failures = "pending", 0
		}
	}
	m.mu.Unlock()
	return m.Counts(), nil
}

func (s *memSource) Claim(ctx context.Context, n int) ([]runner.ClaimedItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []runner.ClaimedItem
	for i := range m.items {
		if len(out) == n {
			break
		}
		it := &m.items[i]
		if it.state != "" && it.state != "pending" {
			continue
		}
		it.state, it.attempt = "running", s.attempt
		it.executions++
		out = append(out, runner.ClaimedItem{Index: i, Value: it.value, Execution: it.executions})
	}
	return out, nil
}

func (s *memSource) Finish(ctx context.Context, outcomes []runner.ItemOutcome) ([]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // as a database call would
	}
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	var failed []int
	for _, o := range outcomes {
		it := &m.items[o.Index]
		if it.state != "running" || it.executions != o.Execution {
			return failed, fmt.Errorf("runnertest: item %d is not running execution %d", o.Index, o.Execution)
		}
		switch {
		case o.Interrupted:
			it.state = "pending"
		case o.Err == nil:
			it.state = "succeeded"
		case it.failures >= m.maxRetries:
			it.failures++
			it.state, it.lastError = "failed", o.Err.Error()
			failed = append(failed, o.Index)
		default:
			it.failures++
			it.state, it.lastError = "pending", o.Err.Error()
		}
	}
	return failed, nil
}
