package runnertest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/runnertest"
)

type echoParams struct {
	Word string `json:"word"`
}

func (echoParams) TaskName() string { return "echo" }

func (p echoParams) Validate() error {
	if p.Word == "" {
		return errors.New(`"word" is required`)
	}
	return nil
}

type echo struct {
	runner.Base
	p echoParams
}

func (e *echo) Run(ctx context.Context, ctl runner.Control) (string, error) {
	return e.p.Word, ctl.Yield(ctx)
}

type unregistered struct{}

func (unregistered) TaskName() string { return "nobody-registered-me" }

// TestARefusedStartEndsAsInTheOperator: params that do not validate and a type nobody
// registered end Failed at once with the operator's reasons, so a test can assert on them
// instead of failing inside runnertest.
func TestARefusedStartEndsAsInTheOperator(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "Echoes a word", func(p echoParams) (runner.Task[string], error) {
		return &echo{p: p}, nil
	}))

	res := runnertest.Run(t, reg, echoParams{Word: "hi"})
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.JSONEq(t, `"hi"`, string(res.Result))

	res = runnertest.Run(t, reg, echoParams{})
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Equal(t, lifecycle.ReasonInvalidParams, res.Reason)
	require.Contains(t, res.Message, `"word" is required`)
	require.Equal(t, []v1alpha1.Phase{v1alpha1.PhaseFailed}, res.Phases())

	res = runnertest.Run(t, reg, unregistered{})
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Equal(t, lifecycle.ReasonUnknownTaskType, res.Reason)
}
