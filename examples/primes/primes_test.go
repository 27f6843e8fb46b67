package primes_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/examples/primes"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/runnertest"
)

func TestPrimes(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "Counts the primes below a limit", primes.New))

	res := runnertest.Run(t, reg, primes.Params{Limit: 5000})
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.JSONEq(t, `{"primes":669}`, string(res.Result))

	task := runnertest.Start(t, reg, primes.Params{Limit: 2_000_000})
	task.WaitForCheckpoints(1)
	task.Pause()
	task.WaitFor(v1alpha1.PhasePaused)
	task.Resume()
	require.Equal(t, v1alpha1.PhaseFinished, task.Wait().Phase)
}

func TestPrimesResumesFromItsCheckpoint(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "Counts the primes below a limit", primes.New))
	// 4000 numbers tested, 550 primes among them: the run tests only the rest.
	res := runnertest.Run(t, reg, primes.Params{Limit: 5000},
		runnertest.WithCheckpoint(map[string]int{"next": 4000, "count": 550}))
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.JSONEq(t, `{"primes":669}`, string(res.Result))
}

func TestPrimesRefusesATooSmallLimit(t *testing.T) {
	reg := runner.NewRegistry()
	require.NoError(t, runner.Register(reg, "Counts the primes below a limit", primes.New))
	res := runnertest.Run(t, reg, primes.Params{Limit: 1})
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Equal(t, "InvalidParams", res.Reason)
	require.Contains(t, res.Message, `"limit" must be at least 2`)
}
