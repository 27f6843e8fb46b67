package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// probes lets test task types report what they did, independently of the operator's journal
// and database: they are the tests' witness.
type probes struct {
	running    atomic.Int64
	maxRunning atomic.Int64

	mu       sync.Mutex
	failures map[string]int // flaky: key -> failures so far
	// executing counts the executions of each task (by uid) running right now, in every
	// operator of the test; doubleRuns lists each moment one task ran twice at once.
	executing  map[string]int
	doubleRuns []string
}

func newProbes() *probes {
	return &probes{failures: map[string]int{}, executing: map[string]int{}}
}

// enter records that an execution of task uid starts; leave that it ends.
func (p *probes) enter(uid string, attempt int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.executing[uid]++
	if n := p.executing[uid]; n > 1 {
		p.doubleRuns = append(p.doubleRuns, fmt.Sprintf("%s attempt %d: %d executions at once", uid, attempt, n))
	}
}

func (p *probes) leave(uid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.executing[uid]--
}

func (p *probes) runningOf(uid string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.executing[uid]
}

func (p *probes) doubles() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.doubleRuns...)
}

func (h *harness) registerTestTypes(reg *runner.Registry) {
	// steps: N steps of `interval`, a pause point and a checkpoint every step; the result says
	// from which step the run started, which proves resumption from a checkpoint.
	runner.MustRegister(reg, "steps", func(p stepsParams) (runner.Task[json.RawMessage], error) {
		d, _ := time.ParseDuration(p.Interval)
		return &stepsTask{steps: p.Steps, interval: d, probes: h.probes}, nil
	})
	// flaky: fails the first `failures` attempts (counted per `key`), then finishes.
	runner.MustRegister(reg, "fails a few times", func(p flakyParams) (runner.Task[json.RawMessage], error) {
		return &flakyTask{key: p.Key, failures: p.Failures, probes: h.probes}, nil
	})
	// bigresult: finishes with [1,1,...], under 64 KiB as compact JSON, over it as PostgreSQL
	// stores it (jsonb writes ", " between elements).
	runner.MustRegister(reg, "big result", func(bigResultParams) (runner.Task[json.RawMessage], error) { return bigResultTask{}, nil })
	// dirty: checkpoints and fails with text PostgreSQL cannot store as it is (NUL, invalid UTF-8).
	runner.MustRegister(reg, "dirty text", func(dirtyParams) (runner.Task[json.RawMessage], error) { return dirtyTask{}, nil })
	// silent: shows no sign of life for `silentFor`, then reaches a pause point every 10ms for
	// `aliveFor`, then finishes.
	runner.MustRegister(reg, "silent, then alive", func(p silentParams) (runner.Task[json.RawMessage], error) {
		silent, _ := time.ParseDuration(p.SilentFor)
		alive, _ := time.ParseDuration(p.AliveFor)
		return silentTask{silent: silent, alive: alive}, nil
	})
	// stubborn: ignores cancellation for `for`, then returns.
	runner.MustRegister(reg, "ignores cancellation", func(p stubbornParams) (runner.Task[json.RawMessage], error) {
		d, _ := time.ParseDuration(p.For)
		return stubbornTask{d: d, probes: h.probes}, nil
	})
	// chatty: saves 48 KiB checkpoints and reports progress in a tight loop until stopped.
	runner.MustRegister(reg, "chatty", func(chattyParams) (runner.Task[json.RawMessage], error) { return chattyTask{}, nil })
}

type stepsParams struct {
	Steps    int    `json:"steps"`
	Interval string `json:"interval"`
	// Padding is ballast: it makes the params as large as a test needs.
	Padding string `json:"padding,omitempty"`
}

func (stepsParams) TaskName() string { return "steps" }

func (p stepsParams) Validate() error {
	if p.Steps <= 0 {
		return errors.New("steps needs a positive 'steps'")
	}
	return nil
}

type flakyParams struct {
	Key      string `json:"key"`
	Failures int    `json:"failures"`
}

func (flakyParams) TaskName() string { return "flaky" }

type silentParams struct {
	SilentFor string `json:"silentFor"`
	AliveFor  string `json:"aliveFor"`
}

func (silentParams) TaskName() string { return "silent" }

type stubbornParams struct {
	For string `json:"for"`
}

func (stubbornParams) TaskName() string { return "stubborn" }

type (
	bigResultParams struct{}
	dirtyParams     struct{}
	chattyParams    struct{}
)

func (bigResultParams) TaskName() string { return "bigresult" }
func (dirtyParams) TaskName() string     { return "dirty" }
func (chattyParams) TaskName() string    { return "chatty" }

type stepsTask struct {
	runner.Base
	steps    int
	interval time.Duration
	probes   *probes
}

type stepsCheckpoint struct {
	Next int `json:"next"`
}

func (s *stepsTask) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	uid := string(ctl.Key())
	s.probes.enter(uid, ctl.Attempt())
	defer s.probes.leave(uid)
	n := s.probes.running.Add(1)
	defer s.probes.running.Add(-1)
	for {
		cur := s.probes.maxRunning.Load()
		if n <= cur || s.probes.maxRunning.CompareAndSwap(cur, n) {
			break
		}
	}
	var cp stepsCheckpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil {
		return nil, err
	}
	started := cp.Next
	for i := cp.Next; i < s.steps; i++ {
		// A paused task gives its slot back: it is not "running" while parked.
		s.probes.running.Add(-1)
		err := ctl.Yield(ctx)
		s.probes.running.Add(1)
		if err != nil {
			return nil, err
		}
		if s.interval > 0 {
			select {
			case <-time.After(s.interval):
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		ctl.SetProgress(fmt.Sprintf("%d/%d", i+1, s.steps))
		if err := ctl.SaveCheckpoint(ctx, stepsCheckpoint{Next: i + 1}); err != nil {
			return nil, err
		}
	}
	return json.Marshal(map[string]int{"startedAt": started, "steps": s.steps})
}

type flakyTask struct {
	runner.Base
	key      string
	failures int
	probes   *probes
}

func (f *flakyTask) Run(context.Context, runner.Control) (json.RawMessage, error) {
	f.probes.mu.Lock()
	defer f.probes.mu.Unlock()
	if f.probes.failures[f.key] < f.failures {
		f.probes.failures[f.key]++
		return nil, fmt.Errorf("flaky failure %d of %d", f.probes.failures[f.key], f.failures)
	}
	return json.RawMessage(`{"ok":true}`), nil
}

type bigResultTask struct{ runner.Base }

func (bigResultTask) Run(context.Context, runner.Control) (json.RawMessage, error) {
	n := runner.MaxResultBytes/2 - 10
	return json.RawMessage("[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"), nil
}

type dirtyTask struct{ runner.Base }

func (dirtyTask) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	ctl.SetProgress("half\x00way")
	if err := ctl.SaveCheckpoint(ctx, map[string]string{"note": "nul\x00inside"}); err != nil {
		return nil, err
	}
	return nil, errors.New("cannot parse \"\x00\xff\": bad bytes")
}

type chattyTask struct{ runner.Base }

func (chattyTask) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	pad := strings.Repeat("x", 48<<10)
	for i := 0; ; i++ {
		if err := ctl.Yield(ctx); err != nil {
			return nil, err
		}
		ctl.SetProgress(fmt.Sprint(i))
		if err := ctl.SaveCheckpoint(ctx, map[string]any{"i": i, "pad": pad}); err != nil {
			return nil, err
		}
	}
}

type silentTask struct {
	runner.Base
	silent, alive time.Duration
}

func (s silentTask) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	time.Sleep(s.silent) // a long stretch without a pause point, a heartbeat or progress
	for end := time.Now().Add(s.alive); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err := ctl.Yield(ctx); err != nil {
			return nil, err
		}
	}
	return json.RawMessage(`{}`), nil
}

type stubbornTask struct {
	runner.Base
	d      time.Duration
	probes *probes
}

func (s stubbornTask) Run(_ context.Context, ctl runner.Control) (json.RawMessage, error) {
	s.probes.enter(string(ctl.Key()), ctl.Attempt())
	defer s.probes.leave(string(ctl.Key()))
	time.Sleep(s.d) // ignores every cancellation
	return json.RawMessage(`{}`), nil
}
