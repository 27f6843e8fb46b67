package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/runner"
)

// bulkyParams are the params of a task that saves a large checkpoint and returns a large result.
type bulkyParams struct{}

func (bulkyParams) TaskName() string { return "bulky" }

type bulkyTask struct{ runner.Base }

func (bulkyTask) Run(ctx context.Context, c Control) (json.RawMessage, error) {
	if err := c.SaveCheckpoint(ctx, map[string]string{"pad": string(bytes.Repeat([]byte("c"), 60<<10))}); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"pad": string(bytes.Repeat([]byte("r"), 60<<10))})
}

type sinkFunc func(Transition)

func (f sinkFunc) Transition(t Transition) { f(t) }

// TestTerminalEntriesLetGoOfResultsAndCheckpoints: a finished run's entry stays in the runner
// until the controller forgets it (the object is deleted, or a new attempt starts), which can be
// days; once its final transition went to the Sink (the journal, which owns it from there), the
// entry must not keep the result and the last checkpoint.
func TestTerminalEntriesLetGoOfResultsAndCheckpoints(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "a run with a big checkpoint and result", func(bulkyParams) (Task, error) { return bulkyTask{}, nil }))
	var final Transition
	reported := make(chan struct{})
	r, err := New(Options{Registry: reg, Sink: sinkFunc(func(tr Transition) {
		if tr.To.Terminal() {
			final = tr
			close(reported)
		}
	})})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	<-r.Started()

	require.NoError(t, r.StartTask("k", StartSpec{TaskName: "bulky", Attempt: 1}))
	select {
	case <-reported:
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not finish")
	}
	require.Equal(t, lifecycle.Finished, final.To, final.Message)
	require.Greater(t, len(final.Result), 60<<10, "the Sink got the result")

	e, err := r.lookup("k")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		select {
		case <-e.exited:
			return true
		default:
			return false
		}
	}, 10*time.Second, time.Millisecond)
	e.mu.Lock()
	defer e.mu.Unlock()
	require.True(t, e.result == nil, "the result went to the Sink")
	require.True(t, e.checkpoint == nil, "a terminal run's checkpoint is not read again")
	require.Nil(t, e.task)
	require.Equal(t, lifecycle.Finished, e.state, "what the entry needs to answer Snapshot stays")
}
