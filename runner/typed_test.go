package runner_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
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
		_, err := reg.New("primes", json.RawMessage(params))
		require.ErrorIs(t, err, runner.ErrInvalidParams, name)
	}
	_, err := reg.New("primes", json.RawMessage(`{"limit":1}`))
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

	reg.MustRegister("raw", func(json.RawMessage) (runner.Task, error) { return newPrimesTask(PrimesParams{Limit: 3}) })
	raw := reg.Types()[1]
	require.Nil(t, raw.Fields, "an untyped factory takes any field")
	require.JSONEq(t, `{"type":"object"}`, string(raw.Schema))
}

// TestTypedTaskThroughTheRunner runs the tutorial's task type with runnertest: paused,
// resumed, and resumed from a checkpoint as a new owner would.
func TestTypedTaskThroughTheRunner(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "primes", newPrimesTask))

	res := runnertest.Run(t, reg, PrimesParams{Limit: 5000})
	require.Equal(t, lifecycle.Finished, res.Status, res.Message)
	var out struct{ Primes int }
	require.NoError(t, res.DecodeResult(&out))
	require.Equal(t, 669, out.Primes)
	require.Len(t, res.Checkpoints, 4, "one checkpoint every 1000 numbers")

	task := runnertest.Start(t, reg, PrimesParams{Limit: 2_000_000})
	task.WaitForCheckpoints(1)
	task.Pause()
	task.WaitFor(lifecycle.Paused)
	task.Resume()
	task.Stop()
	stopped := task.Wait()
	require.Equal(t, []lifecycle.Status{lifecycle.Running, lifecycle.Paused, lifecycle.Running, lifecycle.Stopped}, stopped.Statuses())

	resumed := runnertest.Run(t, reg, PrimesParams{Limit: 5000}, runnertest.Options{Checkpoint: res.Checkpoints[2]})
	require.Equal(t, lifecycle.Finished, resumed.Status)
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
