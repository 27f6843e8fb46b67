// Package runnertest runs task types through taskpilot's real runner in unit tests, without a
// cluster or a database: a task is started, paused, resumed and stopped exactly as the operator
// does it, and every transition, checkpoint and the result are there to assert on.
//
//	func TestCrawl(t *testing.T) {
//		reg := runner.NewRegistry()
//		require.NoError(t, runner.Register(reg, "crawls", newCrawl))
//		res := runnertest.Run(t, reg, CrawlParams{URLs: []string{srv.URL}})
//		require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
//	}
package runnertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
)

// key is the one task a Task runs.
const key runner.Key = "runnertest"

// Transition is one phase change a run reported.
type Transition struct {
	From, To v1alpha1.Phase // From is "" for the first
	Attempt  int
	Reason   string
	Message  string
	At       time.Time
}

// Result is what one run reported.
type Result struct {
	// Phase, Reason and Message are those of the last transition.
	Phase   v1alpha1.Phase
	Reason  string
	Message string
	// Result is what Run returned, as stored (Finished only).
	Result json.RawMessage
	// Transitions are every transition reported, in order.
	Transitions []Transition
	// Checkpoints are every checkpoint saved, in order.
	Checkpoints []json.RawMessage
}

// DecodeResult decodes the result into v.
func (r Result) DecodeResult(v any) error { return json.Unmarshal(r.Result, v) }

// Phases lists the phases the run went through.
func (r Result) Phases() []v1alpha1.Phase {
	out := make([]v1alpha1.Phase, 0, len(r.Transitions))
	for _, t := range r.Transitions {
		out = append(out, t.To)
	}
	return out
}

// Option adjusts a run.
type Option func(*settings)

type settings struct {
	checkpoint          json.RawMessage
	attempt             int
	timeout             time.Duration
	labels, annotations map[string]string
	items               *Items
}

// WithCheckpoint resumes the run from checkpoint, encoded as JSON (what a new owner does after
// a crash, or a run after a pause in another process).
func WithCheckpoint(checkpoint any) Option {
	return func(s *settings) {
		raw, err := json.Marshal(checkpoint)
		if err != nil {
			panic(fmt.Sprintf("runnertest: encode the checkpoint: %v", err))
		}
		s.checkpoint = raw
	}
}

// WithAttempt numbers the run (default 1).
func WithAttempt(n int) Option { return func(s *settings) { s.attempt = n } }

// WithTimeout is spec.timeout (default none).
func WithTimeout(d time.Duration) Option { return func(s *settings) { s.timeout = d } }

// WithLabels and WithAnnotations are the BackgroundTask's (Control.Labels, Control.Annotations).
func WithLabels(labels map[string]string) Option { return func(s *settings) { s.labels = labels } }

// WithAnnotations: see WithLabels.
func WithAnnotations(annotations map[string]string) Option {
	return func(s *settings) { s.annotations = annotations }
}

// Task is a run in progress.
type Task struct {
	t      testing.TB
	r      *engine.Runner
	cancel context.CancelFunc
	done   chan struct{}
	rec    *recorder
}

// Run runs a task of P's type with params to its end (Finished, Failed or Stopped) and returns
// what it reported; the test fails if it does not end within a minute. Params that do not
// validate, or a type reg does not have, end Failed at once with reason InvalidParams or
// UnknownTaskType, as in the operator.
func Run[P runner.Params](t testing.TB, reg *runner.Registry, params P, opts ...Option) Result {
	t.Helper()
	return Start(t, reg, params, opts...).Wait()
}

// Start starts a run of P's type with params and returns it while it runs. It is shut down at
// the end of the test.
func Start[P runner.Params](t testing.TB, reg *runner.Registry, params P, opts ...Option) *Task {
	t.Helper()
	var s settings
	for _, o := range opts {
		o(&s)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatalf("runnertest: encode the params: %v", err)
	}
	name := params.TaskName()
	rec := &recorder{change: make(chan struct{})}
	task := &Task{t: t, done: make(chan struct{}), rec: rec}
	r, err := engine.New(engine.Options{Registry: reg, Sink: rec, Checkpoints: rec})
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
	spec := engine.StartSpec{TaskName: name, Params: raw, Attempt: max(s.attempt, 1), Timeout: s.timeout,
		Checkpoint: s.checkpoint, Namespace: "runnertest", Name: name, Labels: s.labels, Annotations: s.annotations}
	if s.items != nil {
		spec.Items = s.items.bind(spec.Attempt)
	}
	if err := r.StartTask(key, spec); err != nil {
		reason, ok := refusal(err)
		if !ok {
			t.Fatalf("runnertest: start %s: %v", name, err)
		}
		// What the operator records for a spec that can never run: Failed at once, not retried.
		rec.record(Transition{To: v1alpha1.PhaseFailed, Attempt: spec.Attempt, Reason: reason, Message: err.Error(),
			At: time.Now()}, nil)
	}
	return task
}

// refusal is the reason the operator records for a start the registry refused: a task type
// nobody registered, or params that do not decode or validate.
func refusal(err error) (string, bool) {
	switch {
	case errors.Is(err, runner.ErrUnknownTaskType):
		return lifecycle.ReasonUnknownTaskType, true
	case errors.Is(err, runner.ErrInvalidParams):
		return lifecycle.ReasonInvalidParams, true
	}
	return "", false
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

// WaitFor waits until the run reaches phase (at most a minute) and returns what it reported so
// far.
func (k *Task) WaitFor(phase v1alpha1.Phase) Result {
	k.t.Helper()
	return k.waitUntil(fmt.Sprintf("phase %s", phase), func(r Result) bool {
		return slices.ContainsFunc(r.Transitions, func(t Transition) bool { return t.To == phase })
	})
}

// WaitForTransitions waits until the run reported n transitions (Running, Paused, Running, ...:
// a pause and a resume are two), for a test that pauses and resumes again and again.
func (k *Task) WaitForTransitions(n int) Result {
	k.t.Helper()
	return k.waitUntil(fmt.Sprintf("%d transitions", n), func(r Result) bool { return len(r.Transitions) >= n || r.Phase.Terminal() })
}

// WaitForCheckpoints waits until the run saved n checkpoints.
func (k *Task) WaitForCheckpoints(n int) Result {
	k.t.Helper()
	return k.waitUntil(fmt.Sprintf("%d checkpoints", n), func(r Result) bool { return len(r.Checkpoints) >= n })
}

// Wait waits until the run ended and returns what it reported.
func (k *Task) Wait() Result {
	k.t.Helper()
	return k.waitUntil("the end of the run", func(r Result) bool { return r.Phase.Terminal() })
}

func (k *Task) waitUntil(what string, done func(Result) bool) Result {
	k.t.Helper()
	deadline := time.After(time.Minute)
	for {
		res, change := k.rec.snapshot()
		if done(res) {
			return res
		}
		select {
		case <-change:
		case <-deadline:
			k.t.Fatalf("runnertest: no %s within a minute; the run reported %v", what, res.Phases())
			return res
		}
	}
}

// recorder is the run's Sink and checkpoint saver: it keeps what the run reported.
type recorder struct {
	mu     sync.Mutex
	result Result
	change chan struct{} // closed and replaced on every report
}

func (r *recorder) snapshot() (Result, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.result
	res.Transitions = slices.Clone(res.Transitions)
	res.Checkpoints = slices.Clone(res.Checkpoints)
	return res, r.change
}

func (r *recorder) changed() {
	close(r.change)
	r.change = make(chan struct{})
}

func (r *recorder) Transition(t engine.Transition) {
	r.record(Transition{From: phase(t.From), To: phase(t.To), Attempt: t.Attempt, Reason: t.Reason, Message: t.Message,
		At: t.At}, t.Result)
}

func (r *recorder) record(tr Transition, result json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.result.Transitions = append(r.result.Transitions, tr)
	r.result.Phase, r.result.Reason, r.result.Message = tr.To, tr.Reason, tr.Message
	if tr.To == v1alpha1.PhaseFinished {
		r.result.Result = result
	}
	r.changed()
}

func (r *recorder) SaveCheckpoint(_ context.Context, _ runner.Key, _ int, data json.RawMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.result.Checkpoints = append(r.result.Checkpoints, slices.Clone(data))
	r.changed()
	return nil
}

func phase(s lifecycle.Status) v1alpha1.Phase { return v1alpha1.Phase(s.Phase()) }
