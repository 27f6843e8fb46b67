package journal

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/store"
)

// TestTransitionsOfManyTasksShareAStatement: the transitions of many tasks that queue while
// statements are in flight are written together in the next one, each once; one writer is
// enough, since it only hands transitions over.
func TestTransitionsOfManyTasksShareAStatement(t *testing.T) {
	e := newEnv(t, 1, nil)
	open := e.closeGate(t)
	const n = 40
	for i := range n {
		uid := fmt.Sprintf("t%02d", i)
		e.track(uid)
		e.run(uid, "", lifecycle.Running, 1)
	}
	// The batch writers wait at the gate with what they took; the rest waits, handed over.
	if !assert.Eventually(t, func() bool {
		e.store.mu.Lock()
		defer e.store.mu.Unlock()
		return sum(e.store.batches)+len(e.j.transitions) == n
	}, 5*time.Second, time.Millisecond) {
		e.store.mu.Lock()
		batches := append([]int(nil), e.store.batches...)
		e.store.mu.Unlock()
		t.Fatalf("batches %v, waiting %d, backlog %d, queue %d", batches, len(e.j.transitions), e.j.Backlog(), e.j.queue.Len())
	}
	open()
	for i := range n {
		uid := fmt.Sprintf("t%02d", i)
		e.waitCommitted(t, uid, lifecycle.Running, 1)
		require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning"}, e.store.of(uid))
	}
	e.store.mu.Lock()
	batches := append([]int(nil), e.store.batches...)
	e.store.mu.Unlock()
	require.Equal(t, n, sum(batches), "each transition in one statement: %v", batches)
	require.LessOrEqual(t, len(batches), 2*e.j.batchLoops(), "%d statements for %d transitions, the waiting ones together: %v", len(batches), n, batches)
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// closeGate makes the store's transition statements wait until the returned func is called
// (or the test ends).
func (e *env) closeGate(t *testing.T) (open func()) {
	gate := make(chan struct{})
	e.store.mu.Lock()
	e.store.gate = gate
	e.store.mu.Unlock()
	var once sync.Once
	open = func() {
		once.Do(func() {
			e.store.mu.Lock()
			e.store.gate = nil
			e.store.mu.Unlock()
			close(gate)
		})
	}
	t.Cleanup(open) // before the journal stops: its flush would wait at the gate
	return open
}

// TestABatchNeverHoldsOneTaskTwice: a task with several transitions queued has one in each
// statement, in order, while other tasks' share the statements.
func TestABatchNeverHoldsOneTaskTwice(t *testing.T) {
	e := newEnv(t, 4, nil)
	open := e.closeGate(t)
	e.track("busy")
	e.run("busy", "", lifecycle.Running, 1)
	e.run("busy", lifecycle.Running, lifecycle.Paused, 1)
	e.run("busy", lifecycle.Paused, lifecycle.Running, 1)
	for i := range 10 {
		uid := fmt.Sprintf("t%d", i)
		e.track(uid)
		e.run(uid, "", lifecycle.Running, 1)
	}
	require.Eventually(t, func() bool { // every task handed over, "busy" once
		e.store.mu.Lock()
		defer e.store.mu.Unlock()
		return sum(e.store.batches)+len(e.j.transitions) == 11
	}, 5*time.Second, time.Millisecond)
	open()
	e.waitCommitted(t, "busy", lifecycle.Running, 1)
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning", "transition RUNNING>PAUSED@1 RPaused", "transition PAUSED>RUNNING@1 RRunning"}, e.store.of("busy"))
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	require.GreaterOrEqual(t, len(e.store.batches), 3, "the task's three transitions took three statements: %v", e.store.batches)
}

// TestShutdownFlushesWhatQueuedBehindABatch: a transition queued while its task's previous
// one is in a batch statement is written on shutdown too: the flush waits for what is left to
// write, not for the queue to look empty.
func TestShutdownFlushesWhatQueuedBehindABatch(t *testing.T) {
	fs := &fakeStore{}
	j, err := New(Options{Store: fs, Owner: func() store.Owner { return me }, Writers: 1, FlushTimeout: 5 * time.Second})
	require.NoError(t, err)
	e := &env{j: j, store: fs}
	open := e.closeGate(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = j.Start(ctx); close(done) }()

	e.track("x")
	e.run("x", "", lifecycle.Running, 1)
	require.Eventually(t, func() bool { // the first statement waits at the gate
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return len(fs.batches) == 1
	}, 5*time.Second, time.Millisecond)
	e.run("x", lifecycle.Running, lifecycle.Paused, 1) // queued behind it
	cancel()
	time.Sleep(50 * time.Millisecond) // the shutdown has begun, the writer found the queue empty
	open()
	<-done
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning", "transition RUNNING>PAUSED@1 RPaused"}, fs.of("x"))
}

// TestShutdownTakesTasksWaitingOutARetry: a task whose writes failed a few times waits out a
// growing delay before its next try; a shutdown takes it at once (the database may be back),
// rather than waiting the flush's whole time for a try that comes after it.
func TestShutdownTakesTasksWaitingOutARetry(t *testing.T) {
	var failures atomic.Int64
	fs := &fakeStore{fail: func(_, kind string, _ *store.TransitionWrite) error {
		if kind == "transition" && failures.Load() < 4 {
			failures.Add(1)
			return &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}
		}
		return nil
	}}
	// The fourth failure's delay is 800 ms, longer than the flush may take.
	j, err := New(Options{Store: fs, Owner: func() store.Owner { return me }, Writers: 1, FlushTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	e := &env{j: j, store: fs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = j.Start(ctx); close(done) }()
	e.track("x")
	e.run("x", "", lifecycle.Running, 1)
	require.Eventually(t, func() bool { return failures.Load() == 4 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	require.Equal(t, []string{"transition PENDING>RUNNING@1 RRunning"}, fs.of("x"))
}
