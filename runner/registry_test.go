package runner_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

func TestRegistry(t *testing.T) {
	reg := runner.NewRegistry()
	ok := func(PrimesParams) (runner.Task[PrimesResult], error) { return &primesTask{}, nil }
	require.Error(t, runner.Register[PrimesParams, PrimesResult](reg, "x", nil))
	require.NoError(t, runner.Register(reg, "primes", ok))
	require.Error(t, runner.Register(reg, "primes", ok), "duplicate")
	require.Panics(t, func() { runner.MustRegister(reg, "primes", ok) })
	runner.MustRegister(reg, "fails", func(failParams) (runner.Task[struct{}], error) { return nil, errors.New("need more cowbell") })
	runner.MustRegister(reg, "nil", func(nilParams) (runner.Task[struct{}], error) { return nil, nil })
	runner.MustRegister(reg, "panics", func(panicParams) (runner.Task[struct{}], error) { panic("oops") })
	require.Equal(t, []string{"fails", "nil", "panics", "primes"}, reg.Names())

	_, err := reg.Build("missing", nil)
	require.ErrorIs(t, err, runner.ErrUnknownTaskType)

	_, err = reg.Build("fails", nil)
	require.ErrorIs(t, err, runner.ErrInvalidParams)
	var pe *runner.ParamsError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "fails", pe.TaskName)
	require.Contains(t, err.Error(), "need more cowbell")

	for _, name := range []string{"nil", "panics"} {
		_, err = reg.Build(name, nil)
		require.ErrorIs(t, err, runner.ErrInvalidParams, name)
	}
	task, err := reg.Build("primes", json.RawMessage(`{"limit":10}`))
	require.NoError(t, err)
	require.NotNil(t, task)

	builtins := runner.NewRegistry()
	require.NoError(t, builtin.Register(builtins))
	require.Equal(t, []string{"checksum", "countdown", "foreach", "noop", "sleep"}, builtins.Names())
	require.Error(t, builtin.Register(builtins), "registering twice is a duplicate")
}

type nilParams struct{}

func (nilParams) TaskName() string { return "nil" }

type panicParams struct{}

func (panicParams) TaskName() string { return "panics" }
