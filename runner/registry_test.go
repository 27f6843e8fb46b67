package runner_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/runner"
)

func TestRegistry(t *testing.T) {
	reg := runner.NewRegistry()
	ok := func(json.RawMessage) (runner.Task, error) { return badResult{}, nil }
	require.Error(t, reg.Register("", ok))
	require.Error(t, reg.Register("x", nil))
	require.NoError(t, reg.Register("x", ok))
	require.Error(t, reg.Register("x", ok), "duplicate")
	require.Panics(t, func() { reg.MustRegister("x", ok) })
	reg.MustRegister("a", ok)
	reg.MustRegister("fails", func(json.RawMessage) (runner.Task, error) { return nil, errors.New("need more cowbell") })
	reg.MustRegister("nil", func(json.RawMessage) (runner.Task, error) { return nil, nil })
	reg.MustRegister("panics", func(json.RawMessage) (runner.Task, error) { panic("oops") })
	require.Equal(t, []string{"a", "fails", "nil", "panics", "x"}, reg.Names())

	_, err := reg.New("missing", nil)
	require.ErrorIs(t, err, runner.ErrUnknownTaskType)

	_, err = reg.New("fails", nil)
	require.ErrorIs(t, err, runner.ErrInvalidParams)
	var pe *runner.ParamsError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "fails", pe.TaskName)
	require.Contains(t, err.Error(), "need more cowbell")

	for _, name := range []string{"nil", "panics"} {
		_, err = reg.New(name, nil)
		require.ErrorIs(t, err, runner.ErrInvalidParams, name)
	}
	task, err := reg.New("x", nil)
	require.NoError(t, err)
	require.NotNil(t, task)

	builtins := runner.NewRegistry()
	require.NoError(t, runner.RegisterBuiltins(builtins))
	require.Equal(t, []string{"checksum", "countdown", "noop", "sleep"}, builtins.Names())
	require.Error(t, runner.RegisterBuiltins(builtins), "registering twice is a duplicate")
}
