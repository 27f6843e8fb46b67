package runner_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskpilot/taskpilot/runner"
)

// This file holds the task type of docs/runner.md's tutorial (examples/primes) as a fixture of
// runner's own tests, which cannot import the examples module.

// PrimesParams are the params of the "primes" task type. Their TaskName names the type; the
// jsonschema tags describe the fields in the schema the operator publishes.
type PrimesParams struct {
	// Limit: count the primes below it.
	Limit int `json:"limit" jsonschema:"required,minimum=2,description=count the primes below this number,example=100000"`
}

// TaskName names the task type (spec.taskName).
func (PrimesParams) TaskName() string { return "primes" }

// Validate checks what the JSON types cannot; the task fails with InvalidParams and this
// message otherwise.
func (p PrimesParams) Validate() error {
	if p.Limit < 2 {
		return errors.New(`"limit" must be at least 2`)
	}
	return nil
}

type primesCheckpoint struct {
	Next  int `json:"next"`
	Count int `json:"count"`
}

// PrimesResult is the result of a "primes" run.
type PrimesResult struct {
	Primes int `json:"primes"`
}

type primesTask struct {
	runner.Base // no-op Pre and Post
	p           PrimesParams
}

func newPrimesTask(p PrimesParams) (runner.Task[PrimesResult], error) { return &primesTask{p: p}, nil }

func (t *primesTask) Run(ctx context.Context, ctl runner.Control) (PrimesResult, error) {
	var cp primesCheckpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil { // resume if we have one
		return PrimesResult{}, err
	}
	n := max(cp.Next, 2)
	for ; n < t.p.Limit; n++ {
		if n%1000 == 0 {
			if err := ctl.Yield(ctx); err != nil { // pause point; stop/timeout land here
				return PrimesResult{}, err
			}
			ctl.SetProgress(fmt.Sprintf("%d/%d", n, t.p.Limit))
			if err := ctl.SaveCheckpoint(ctx, primesCheckpoint{Next: n, Count: cp.Count}); err != nil {
				return PrimesResult{}, err
			}
		}
		if isPrime(n) {
			cp.Count++
		}
	}
	return PrimesResult{Primes: cp.Count}, nil
}

func isPrime(n int) bool {
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return n >= 2
}
