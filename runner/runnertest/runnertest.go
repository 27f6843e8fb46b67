// Package runnertest runs task types through a real runner in unit tests, without a cluster or
// a database: a task is started, paused, resumed and stopped exactly as the operator does it,
// and every transition, checkpoint and the result are there to assert on.
//
//	func TestCrawl(t *testing.T) {
//		reg := runner.NewRegistry()
//		require.NoError(t, runner.Register(reg, "crawls", newCrawl))
//		res := runnertest.Run(t, reg, CrawlParams{URLs: []string{srv.URL}})
//		require.Equal(t, lifecycle.Finished, res.Status, res.Message)
//	}
package runnertest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/runner"
)

// key is the one task a Task runs.
const key runner.Key = "runnertest"

// Result is what one run reported.
type Result struct {
	// Status, Reason and Message are those of the last transition.
	Status  lifecycle.Status
	Reason  string
	Message string
	// Result is what Run returned (Finished only).
	Result json.RawMessage
	// Transitions are every transition reported, in order.
	Transitions []runner.Transition
	// Checkpoints are every checkpoint saved, in order.
	Checkpoints []json.RawMessage
}

// DecodeResult decodes the result into v.
func (r Result) DecodeResult(v any) error { return json.Unmarshal(r.Result, v) }

// Statuses lists the statuses the run went through.
func (r Result) Statuses() []lifecycle.Status {
	out := make([]lifecycle.Status, 0, len(r.Transitions))
	for _, t := range r.Transitions {
		out = append(out, t.To)
	}
	return out
}

// Options of a run.
type Options struct {
	// Name is the task type to run (default: the TaskName of params when it is runner.Params).
	Name string
	// Checkpoint resumes the run from a checkpoint (what a new owner does after a crash).
	Checkpoint json.RawMessage
	// Attempt numbers the run (default 1).
	Attempt int
	// Timeout is spec.timeout (0: none).
	Timeout time.Duration
	// Labels and Annotations are the BackgroundTask's.
	Labels, Annotations map[string]string
}

// Task is a run in progress.
type Task struct {
	t      testing.TB
	r      *runner.Runner
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	result Result
	change chan struct{} // closed and replaced on every transition
}

// Run runs params' task type to its end (Finished, Failed or Stopped) and returns what it
// reported; the test fails if it does not end within a minute.
func Run(t testing.TB, reg *runner.Registry, params any, opts ...Options) Result {
	t.Helper()
	task := Start(t, reg, params, opts...)
	return task.Wait()
}

// Start starts a run of params' task type (params is a runner.Params value, or JSON for a type
// named in Options.Name) and returns it while it runs. It is shut down at the end of the test.
func Start(t testing.TB, reg *runner.Registry, params any, opts ...Options) *Task {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	raw, name := encode(t, params, o.Name)
	task := &Task{t: t, done: make(chan struct{}), change: make(chan struct{})}
	r, err := runner.New(runner.Options{Registry: reg, Sink: task, Checkpoints: task})
	if err != nil {
		t.Fatalf("runnertest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	task.r, task.cancel = r, cancel
	go func() {
		defer close(task.done)
		_ = r.Start(ctx)
	}()
	t.Cleanup(func() { cancel(); <-task.done })
	<-r.Started()
	spec := runner.StartSpec{TaskName: name, Params: raw, Attempt: max(o.Attempt, 1), Timeout: o.Timeout,
		Checkpoint: o.Checkpoint, Namespace: "runnertest", Name: name, Labels: o.Labels, Annotations: o.Annotations}
	if err := r.StartTask(key, spec); err != nil {
		t.Fatalf("runnertest: start %s: %v", name, err)
	}
	return task
}

func encode(t testing.TB, params any, name string) (json.RawMessage, string) {
	t.Helper()
	if p, ok := params.(runner.Params); ok && name == "" {
		name = p.TaskName()
	}
	if name == "" {
		t.Fatalf("runnertest: params %T name no task type: set Options.Name", params)
	}
	switch v := params.(type) {
	case json.RawMessage:
		return v, name
	case []byte:
		return v, name
	case string:
		return json.RawMessage(v), name
	}
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatalf("runnertest: encode params: %v", err)
	}
	return raw, name
}

// Pause asks the run to park at its next pause point (spec.state Paused).
func (k *Task) Pause() { k.call(k.r.PauseTask) }

// Resume continues a paused run (spec.state Running).
func (k *Task) Resume() { k.call(k.r.ResumeTask) }

// Stop cancels the run (spec.state Stopped).
func (k *Task) Stop() { k.call(k.r.StopTask) }

func (k *Task) call(f func(runner.Key) error) {
	k.t.Helper()
	if err := f(key); err != nil {
		k.t.Fatalf("runnertest: %v", err)
	}
}

// WaitFor waits until the run reaches status (at most a minute) and returns what it reported
// so far.
func (k *Task) WaitFor(status lifecycle.Status) Result {
	k.t.Helper()
	return k.waitUntil(fmt.Sprintf("status %s", status), func(r Result) bool {
		return slices.ContainsFunc(r.Transitions, func(t runner.Transition) bool { return t.To == status })
	})
}

// WaitForCheckpoints waits until the run saved n checkpoints.
func (k *Task) WaitForCheckpoints(n int) Result {
	k.t.Helper()
	return k.waitUntil(fmt.Sprintf("%d checkpoints", n), func(r Result) bool { return len(r.Checkpoints) >= n })
}

// Wait waits until the run ended and returns what it reported.
func (k *Task) Wait() Result {
	k.t.Helper()
	return k.waitUntil("the end of the run", func(r Result) bool { return r.Status.Terminal() })
}

func (k *Task) waitUntil(what string, done func(Result) bool) Result {
	k.t.Helper()
	deadline := time.After(time.Minute)
	for {
		k.mu.Lock()
		res, change := k.snapshot(), k.change
		k.mu.Unlock()
		if done(res) {
			return res
		}
		select {
		case <-change:
		case <-deadline:
			k.t.Fatalf("runnertest: no %s within a minute; the run reported %v", what, res.Statuses())
			return res
		}
	}
}

func (k *Task) snapshot() Result {
	r := k.result
	r.Transitions = slices.Clone(r.Transitions)
	r.Checkpoints = slices.Clone(r.Checkpoints)
	return r
}

// Transition implements runner.Sink.
func (k *Task) Transition(t runner.Transition) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.result.Transitions = append(k.result.Transitions, t)
	k.result.Status, k.result.Reason, k.result.Message = t.To, t.Reason, t.Message
	if t.To == lifecycle.Finished {
		k.result.Result = t.Result
	}
	close(k.change)
	k.change = make(chan struct{})
}

// SaveCheckpoint implements runner.CheckpointSaver.
func (k *Task) SaveCheckpoint(_ context.Context, _ runner.Key, _ int, data json.RawMessage) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.result.Checkpoints = append(k.result.Checkpoints, slices.Clone(data))
	close(k.change)
	k.change = make(chan struct{})
	return nil
}
