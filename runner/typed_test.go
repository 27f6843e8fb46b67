package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/runnertest"
)

// TestTypedRegistration: a typed task type gets its params decoded strictly and validated,
// and is described by a schema generated from its params struct.
func TestTypedRegistration(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "Counts the primes below a limit", newPrimesTask))
	require.Error(t, runner.Register(reg, "again", newPrimesTask), "one type, one registration")

	for name, params := range map[string]string{
		"unknown field":  `{"limit":10,"limt":3}`,
		"wrong type":     `{"limit":"ten"}`,
		"trailing data":  `{"limit":10} {}`,
		"fails Validate": `{"limit":1}`,
		"missing field":  `{}`,
	} {
		_, err := reg.Build("primes", json.RawMessage(params))
		require.ErrorIs(t, err, runner.ErrInvalidParams, name)
	}
	_, err := reg.Build("primes", json.RawMessage(`{"limit":1}`))
	require.ErrorContains(t, err, `"limit" must be at least 2`, "Validate's message reaches the user")

	p, err := runner.DecodeParams[PrimesParams](json.RawMessage(`{"limit":50}`))
	require.NoError(t, err)
	require.Equal(t, 50, p.Limit)

	types := reg.Types()
	require.Len(t, types, 1)
	info := types[0]
	require.Equal(t, "primes", info.Name)
	require.Equal(t, "Counts the primes below a limit", info.Description)
	require.Equal(t, []string{"limit"}, info.Fields)
	require.JSONEq(t, `{"limit":100000}`, string(info.Example))
	var schema map[string]any
	require.NoError(t, json.Unmarshal(info.Schema, &schema))
	require.Equal(t, "object", schema["type"])
	require.Equal(t, false, schema["additionalProperties"], "unknown fields are refused, as the decoder does")
	require.Equal(t, []any{"limit"}, schema["required"])
	limit := schema["properties"].(map[string]any)["limit"].(map[string]any)
	require.Equal(t, "integer", limit["type"])
	require.EqualValues(t, 2, limit["minimum"])

	runner.MustRegister(reg, "takes any field", func(anyParams) (runner.Task[struct{}], error) { return noop{}, nil })
	custom := reg.Types()[0]
	require.Equal(t, "any", custom.Name)
	require.Nil(t, custom.Fields, "params that decode themselves take any field")
	_, err = reg.Build("any", json.RawMessage(`{"whatever":1}`))
	require.NoError(t, err)
}

// anyParams decode themselves: any field is theirs.
type anyParams struct{ raw json.RawMessage }

func (anyParams) TaskName() string { return "any" }

func (p *anyParams) UnmarshalJSON(b []byte) error {
	p.raw = append(json.RawMessage(nil), b...)
	return nil
}

type noop struct{ runner.Base }

func (noop) Run(context.Context, runner.Control) (struct{}, error) { return struct{}{}, nil }

// TestTypedTaskThroughTheRunner runs the tutorial's task type with runnertest: paused,
// resumed, and resumed from a checkpoint as a new owner would.
func TestTypedTaskThroughTheRunner(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "primes", newPrimesTask))

	res := runnertest.Run(t, reg, PrimesParams{Limit: 5000})
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	var out PrimesResult
	require.NoError(t, res.DecodeResult(&out))
	require.Equal(t, 669, out.Primes)
	require.Len(t, res.Checkpoints, 4, "one checkpoint every 1000 numbers")

	task := runnertest.Start(t, reg, PrimesParams{Limit: 2_000_000})
	task.WaitForCheckpoints(1)
	task.Pause()
	task.WaitFor(v1alpha1.PhasePaused)
	task.Resume()
	task.Stop()
	stopped := task.Wait()
	require.Equal(t, []v1alpha1.Phase{v1alpha1.PhaseRunning, v1alpha1.PhasePaused, v1alpha1.PhaseRunning, v1alpha1.PhaseStopped},
		stopped.Phases())

	resumed := runnertest.Run(t, reg, PrimesParams{Limit: 5000}, runnertest.WithCheckpoint(res.Checkpoints[2]))
	require.Equal(t, v1alpha1.PhaseFinished, resumed.Phase)
	require.NoError(t, resumed.DecodeResult(&out))
	require.Equal(t, 669, out.Primes, "a run resumed from a checkpoint counts the same")
	require.Len(t, resumed.Checkpoints, 2, "it did only the work from the checkpoint (3000) on")
}

// TestIdempotencyKey: the same for every run of an attempt, different across attempts and steps.
func TestIdempotencyKey(t *testing.T) {
	k := runner.IdempotencyKey("uid-1", 1, "charge")
	require.Equal(t, k, runner.IdempotencyKey("uid-1", 1, "charge"))
	require.NotEqual(t, k, runner.IdempotencyKey("uid-1", 2, "charge"))
	require.NotEqual(t, k, runner.IdempotencyKey("uid-1", 1, "email"))
	require.NotEqual(t, k, runner.IdempotencyKey("uid-2", 1, "charge"))
	require.Len(t, k, 35)
}

// TestSleepIsAPausePoint: ctl.Sleep parks a pause at once (the rest of the wait comes after the
// resume), returns the stop's cause without waiting out the delay, and the typed result is
// stored as JSON.
func TestSleepIsAPausePoint(t *testing.T) {
	reg := runner.NewRegistry()
	runner.MustRegister(reg, "sleeps", func(p sleeperParams) (runner.Task[sleeperResult], error) { return &sleeper{p: p}, nil })

	task := runnertest.Start(t, reg, sleeperParams{Naps: 3, Nap: time.Hour})
	task.WaitFor(v1alpha1.PhaseRunning)
	task.Pause()
	task.WaitFor(v1alpha1.PhasePaused) // within the hour-long nap
	task.Resume()
	task.Stop()
	res := task.Wait()
	require.Equal(t, v1alpha1.PhaseStopped, res.Phase, "stopped in the middle of a nap: %s", res.Message)

	res = runnertest.Run(t, reg, sleeperParams{Naps: 3, Nap: time.Millisecond})
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.JSONEq(t, `{"naps":3}`, string(res.Result))
}

type sleeperParams struct {
	Naps int           `json:"naps"`
	Nap  time.Duration `json:"nap"`
}

func (sleeperParams) TaskName() string { return "sleeper" }

type sleeperResult struct {
	Naps int `json:"naps"`
}

type sleeper struct {
	runner.Base
	p sleeperParams
}

func (s *sleeper) Run(ctx context.Context, ctl runner.Control) (sleeperResult, error) {
	for i := range s.p.Naps {
		if err := ctl.Sleep(ctx, s.p.Nap); err != nil {
			return sleeperResult{Naps: i}, err
		}
	}
	return sleeperResult{Naps: s.p.Naps}, nil
}

// TestAPermanentErrorIsNotRetried: an error marked Permanent fails the run with reason
// PermanentError, which the lifecycle does not retry; a plain error fails it with Error.
func TestAPermanentErrorIsNotRetried(t *testing.T) {
	reg := runner.NewRegistry()
	runner.MustRegister(reg, "fails", func(p failParams) (runner.Task[struct{}], error) { return failing{p}, nil })
	res := runnertest.Run(t, reg, failParams{Permanent: true})
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Equal(t, lifecycle.ReasonPermanentError, res.Reason)
	require.Equal(t, "the account was closed", res.Message)
	require.False(t, lifecycle.Retriable(res.Reason))

	res = runnertest.Run(t, reg, failParams{})
	require.Equal(t, lifecycle.ReasonError, res.Reason)
	require.True(t, lifecycle.Retriable(res.Reason))
	require.True(t, errors.Is(runner.Permanent(errors.New("x")), runner.ErrPermanent))
	require.NoError(t, runner.Permanent(nil))
}

type failParams struct {
	Permanent bool `json:"permanent"`
}

func (failParams) TaskName() string { return "fails" }

type failing struct{ p failParams }

func (failing) Pre(context.Context, runner.Control) error  { return nil }
func (failing) Post(context.Context, runner.Outcome) error { return nil }
func (f failing) Run(context.Context, runner.Control) (struct{}, error) {
	err := errors.New("the account was closed")
	if f.p.Permanent {
		err = runner.Permanent(err)
	}
	return struct{}{}, err
}
