package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 10 * time.Second
const tick = time.Millisecond

// recSink records transitions and flags concurrent delivery for one key.
type recSink struct {
	mu       sync.Mutex
	all      []engine.Transition
	inflight map[runner.Key]bool
	overlap  atomic.Int32
	// handed marks where a key's run was handed over (an index into all): its next run
	// starts a new chain, as the journal tracks a task anew when it comes back.
	handed map[runner.Key]int
}

func newRecSink() *recSink {
	return &recSink{inflight: map[runner.Key]bool{}, handed: map[runner.Key]int{}}
}

// handedOver notes that key's run was handed over (nothing was reported for its end).
func (s *recSink) handedOver(key runner.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handed[key] = len(s.all)
}

func (s *recSink) Transition(t engine.Transition) {
	s.mu.Lock()
	if s.inflight[t.Key] {
		s.overlap.Add(1)
	}
	s.inflight[t.Key] = true
	s.mu.Unlock()
	// A short window so overlapping deliveries would be caught.
	for range 100 {
		_ = t.Key
	}
	s.mu.Lock()
	s.all = append(s.all, t)
	delete(s.inflight, t.Key)
	s.mu.Unlock()
}

func (s *recSink) of(key runner.Key) []engine.Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []engine.Transition
	for _, t := range s.all {
		if t.Key == key {
			out = append(out, t)
		}
	}
	return out
}

func (s *recSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// states lists the To states reported for key.
func (s *recSink) states(key runner.Key) []lifecycle.Status {
	var out []lifecycle.Status
	for _, t := range s.of(key) {
		out = append(out, t.To)
	}
	return out
}

// waitTo waits until key was reported entering state to (n-th time, 1-based)
// and returns that transition.
func (s *recSink) waitTo(t *testing.T, key runner.Key, to lifecycle.Status) engine.Transition {
	t.Helper()
	var got engine.Transition
	require.Eventually(t, func() bool {
		for _, tr := range s.of(key) {
			if tr.To == to {
				got = tr
				return true
			}
		}
		return false
	}, waitFor, tick, "key %s never reached %s; got %v", key, to, s.states(key))
	return got
}

// checkChains asserts per-key order: every From is the previous To, or ""
// after a terminal state (new attempt), and delivery was never concurrent.
func (s *recSink) checkChains(t *testing.T) {
	t.Helper()
	require.Zero(t, s.overlap.Load(), "concurrent Sink calls for one key")
	s.mu.Lock()
	defer s.mu.Unlock()
	last := map[runner.Key]lifecycle.Status{}
	for i, tr := range s.all {
		if at, ok := s.handed[tr.Key]; ok && i >= at {
			delete(last, tr.Key) // handed over before this: the chain of this key starts anew
			s.handed[tr.Key] = len(s.all)
		}
		prev, seen := last[tr.Key]
		if tr.From == "" {
			require.True(t, !seen || prev.Terminal(), "new run for %s while %s", tr.Key, prev)
		} else {
			require.Equal(t, prev, tr.From, "broken chain for %s: %+v", tr.Key, tr)
		}
		require.NotEqual(t, tr.From, tr.To, "no-op transition %+v", tr)
		last[tr.Key] = tr.To
	}
}

// memSaver is an in-memory CheckpointSaver that can run a hook per save.
type memSaver struct {
	mu    sync.Mutex
	saves map[runner.Key][]json.RawMessage
	hook  func(key runner.Key, data json.RawMessage)
}

func newMemSaver() *memSaver { return &memSaver{saves: map[runner.Key][]json.RawMessage{}} }

func (m *memSaver) SaveCheckpoint(_ context.Context, key runner.Key, _ int, data json.RawMessage) error {
	m.mu.Lock()
	m.saves[key] = append(m.saves[key], append(json.RawMessage(nil), data...))
	hook := m.hook
	m.mu.Unlock()
	if hook != nil {
		hook(key, data)
	}
	return nil
}

func (m *memSaver) get(key runner.Key) []json.RawMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]json.RawMessage(nil), m.saves[key]...)
}

// harness backs the test-only "probe" task type.
type harness struct {
	mu       sync.Mutex
	releases map[string]chan struct{}
	outcomes map[runner.Key][]runner.Outcome
	runs     map[runner.Key]int
	found    map[runner.Key]bool
	cpErr    map[runner.Key]error
	loopErr  map[runner.Key]error // why a loop task's Run returned
	started  chan string          // ids in the order Run began
	unstuck  chan struct{}

	running, maxRunning atomic.Int64
}

func newHarness() *harness {
	return &harness{
		releases: map[string]chan struct{}{},
		outcomes: map[runner.Key][]runner.Outcome{},
		runs:     map[runner.Key]int{},
		found:    map[runner.Key]bool{},
		cpErr:    map[runner.Key]error{},
		loopErr:  map[runner.Key]error{},
		started:  make(chan string, 10000),
		unstuck:  make(chan struct{}),
	}
}

func (h *harness) ch(id string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.releases[id]
	if !ok {
		c = make(chan struct{})
		h.releases[id] = c
	}
	return c
}

func (h *harness) release(id string) { close(h.ch(id)) }

func (h *harness) outcomesOf(key runner.Key) []runner.Outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]runner.Outcome(nil), h.outcomes[key]...)
}

func (h *harness) loopErrOf(key runner.Key) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loopErr[key]
}

func (h *harness) runsOf(key runner.Key) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runs[key]
}

type probeParams struct {
	Mode  string `json:"mode"`
	ID    string `json:"id,omitempty"`
	Steps int    `json:"steps,omitempty"`
	Bytes int64  `json:"bytes,omitempty"` // memory a run needs (Sized), 0: the default
}

// probe is the test task type. Modes:
//
//	loop       yield every ms until released (h.release(id))
//	quick      record start order, finish at once
//	burst      count concurrency, yield Steps times with 1ms sleeps, finish
//	fail       Run returns an error
//	preFail    Pre returns an error
//	postFail   finish, Post returns an error
//	prePanic, runPanic, postPanic
//	stuck      ignore cancellation until h.unstuck is closed
//	checkpoint load {"n"}, record found, save n+1, then loop
//	bigcheckpoint try to save a >64KiB checkpoint, record the error
//	spacey     return an array of ones: under 64 KiB as compact JSON, over it
//	           as PostgreSQL stores it (jsonb puts a space after each comma)
//	spaceycheckpoint try to save such an array as a checkpoint, record the error
//	dirtyfail  fail with a message holding a NUL and invalid UTF-8
//	dirtyprogress report a long progress text holding a NUL, then finish
type probe struct {
	h   *harness
	p   probeParams
	key runner.Key
}

func (h *harness) factory(raw json.RawMessage) (runner.Task[json.RawMessage], error) {
	var p probeParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	if p.Mode == "" {
		return nil, errors.New("mode is required")
	}
	return &probe{h: h, p: p}, nil
}

// MemoryBytes implements runner.Sized.
func (t *probe) MemoryBytes() int64 {
	if t.p.Bytes > 0 {
		return t.p.Bytes
	}
	return runner.DefaultTaskMemory
}

func (t *probe) Pre(_ context.Context, ctl runner.Control) error {
	t.key = ctl.Key()
	switch t.p.Mode {
	case "preFail":
		return errors.New("pre boom")
	case "prePanic":
		panic("kaboom")
	}
	return nil
}

func (t *probe) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	h := t.h
	h.mu.Lock()
	h.runs[t.key]++
	h.mu.Unlock()
	h.started <- t.p.ID
	switch t.p.Mode {
	case "fail":
		return nil, errors.New("boom")
	case "runPanic":
		panic("kaboom")
	case "stuck":
		<-h.unstuck
		return nil, nil
	case "burst":
		n := h.running.Add(1)
		defer h.running.Add(-1)
		for {
			m := h.maxRunning.Load()
			if n <= m || h.maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		for range t.p.Steps {
			if err := ctl.Yield(ctx); err != nil {
				return nil, err
			}
			time.Sleep(time.Millisecond)
		}
		return json.RawMessage(`{}`), nil
	case "checkpoint":
		var cp struct{ N int }
		found, err := ctl.LoadCheckpoint(&cp)
		if err != nil {
			return nil, err
		}
		h.mu.Lock()
		h.found[t.key] = found
		h.mu.Unlock()
		if err := ctl.SaveCheckpoint(ctx, struct{ N int }{cp.N + 1}); err != nil {
			return nil, err
		}
		return t.loop(ctx, ctl)
	case "bigcheckpoint":
		err := ctl.SaveCheckpoint(ctx, strings.Repeat("x", runner.MaxCheckpointBytes))
		h.mu.Lock()
		h.cpErr[t.key] = err
		h.mu.Unlock()
		return json.RawMessage(`{}`), nil
	case "spacey":
		return spaceyArray(), nil
	case "spaceycheckpoint":
		err := ctl.SaveCheckpoint(ctx, spaceyArray())
		h.mu.Lock()
		h.cpErr[t.key] = err
		h.mu.Unlock()
		return json.RawMessage(`{}`), nil
	case "dirtyfail":
		return nil, errors.New("bad\x00byte\xff here")
	case "dirtyprogress":
		ctl.SetProgress("a\x00" + strings.Repeat("é", 100))
		return json.RawMessage(`{}`), nil
	case "loop":
		return t.loop(ctx, ctl)
	}
	return json.RawMessage(`{"ok":true}`), nil
}

// spaceyArray is [1,1,...]: 2 bytes per element as compact JSON, 3 as jsonb text.
func spaceyArray() json.RawMessage {
	n := runner.MaxResultBytes/2 - 10
	return json.RawMessage("[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]")
}

func (t *probe) loop(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	rel := t.h.ch(t.p.ID)
	tk := time.NewTicker(time.Millisecond)
	defer tk.Stop()
	for i := 0; ; i++ {
		if err := ctl.Yield(ctx); err != nil {
			t.h.mu.Lock()
			t.h.loopErr[ctl.Key()] = err
			t.h.mu.Unlock()
			return nil, fmt.Errorf("loop interrupted: %w", err)
		}
		ctl.SetProgress(fmt.Sprint(i))
		select {
		case <-rel:
			return json.RawMessage(`{"released":true}`), nil
		case <-tk.C:
		}
	}
}

func (t *probe) Post(_ context.Context, o runner.Outcome) error {
	t.h.mu.Lock()
	t.h.outcomes[t.key] = append(t.h.outcomes[t.key], o)
	t.h.mu.Unlock()
	switch t.p.Mode {
	case "postFail":
		return errors.New("post boom")
	case "postPanic":
		panic("kaboom")
	}
	return nil
}

// env is a started runner with its harness, sink and saver.
type env struct {
	r     *engine.Runner
	h     *harness
	sink  *recSink
	saver *memSaver
	stop  func() // cancels Start and waits for it
}

// newEnv starts a runner; tweak adjusts Options before New.
func newEnv(t testing.TB, tweak func(*engine.Options)) *env {
	h := newHarness()
	reg := runner.NewRegistry()
	require.NoError(t, builtin.Register(reg))
	require.NoError(t, registerRaw[probeName](reg, h.factory))
	e := &env{h: h, sink: newRecSink(), saver: newMemSaver()}
	opts := engine.Options{Registry: reg, Sink: e.sink, Checkpoints: e.saver, StopGrace: 5 * time.Second}
	if tweak != nil {
		tweak(&opts)
	}
	r, err := engine.New(opts)
	require.NoError(t, err)
	e.r = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	select {
	case <-r.Started():
	case <-time.After(waitFor):
		t.Fatal("runner did not start")
	}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			// Let loop tasks leave; they are stopped by the shutdown anyway.
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(waitFor):
				t.Fatal("Start did not return after cancel")
			}
		})
	}
	t.Cleanup(func() {
		e.stop()
		if tt, ok := t.(*testing.T); ok {
			e.sink.checkChains(tt)
		}
	})
	return e
}

func probeSpec(mode, id string) engine.StartSpec {
	return engine.StartSpec{TaskName: "probe", Params: json.RawMessage(fmt.Sprintf(`{"mode":%q,"id":%q}`, mode, id)), Attempt: 1}
}

func (e *env) start(t *testing.T, key, mode string) {
	t.Helper()
	require.NoError(t, e.r.StartTask(runner.Key(key), probeSpec(mode, key)))
}

func (e *env) waitState(t *testing.T, key runner.Key, st lifecycle.Status) engine.TaskSnapshot {
	t.Helper()
	var snap engine.TaskSnapshot
	require.Eventually(t, func() bool {
		var ok bool
		snap, ok = e.r.Snapshot(key)
		return ok && snap.Status == st
	}, waitFor, tick, "key %s never reached %s (now %+v)", key, st, snap)
	return snap
}

// named names a test task type registered with registerRaw.
type named interface{ name() string }

// rawParams hands a test task type its params as they came (it decodes itself).
type rawParams[N named] struct{ raw json.RawMessage }

func (rawParams[N]) TaskName() string {
	var n N
	return n.name()
}

func (p *rawParams[N]) UnmarshalJSON(b []byte) error {
	p.raw = append(json.RawMessage(nil), b...)
	return nil
}

// registerRaw registers the test task type N whose constructor reads its raw params.
func registerRaw[N named](reg *runner.Registry, f func(json.RawMessage) (runner.Task[json.RawMessage], error)) error {
	return runner.Register(reg, "a test task type", func(p rawParams[N]) (runner.Task[json.RawMessage], error) { return f(p.raw) })
}

type (
	probeName   struct{}
	spinName    struct{}
	badName     struct{}
	noyieldName struct{}
)

func (probeName) name() string   { return "probe" }
func (spinName) name() string    { return "spin" }
func (badName) name() string     { return "bad" }
func (noyieldName) name() string { return "noyield" }
