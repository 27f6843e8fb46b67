package primes

import (
	"context"
	"fmt"

	"github.com/taskpilot/taskpilot/runner"
)

// Result is a finished run's result (status.result).
type Result struct {
	Primes int `json:"primes"`
}

// checkpoint is where a run got to: the next number to test and the primes counted below it.
type checkpoint struct {
	Next  int `json:"next"`
	Count int `json:"count"`
}

type task struct {
	runner.Base // no-op Pre and Post
	p           Params
}

// New builds one run of the task type; Register it with runner.Register.
func New(p Params) (runner.Task[Result], error) { return &task{p: p}, nil }

func (t *task) Run(ctx context.Context, ctl runner.Control) (Result, error) {
	var cp checkpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil { // resume where the last run got to
		return Result{}, err
	}
	for n := max(cp.Next, 2); n < t.p.Limit; n++ {
		if n%1000 == 0 {
			if err := ctl.Yield(ctx); err != nil { // the pause point: pause, stop, timeout
				return Result{}, err
			}
			ctl.SetProgress(fmt.Sprintf("%d/%d", n, t.p.Limit))
			if err := ctl.SaveCheckpoint(ctx, checkpoint{Next: n, Count: cp.Count}); err != nil {
				return Result{}, err
			}
		}
		if isPrime(n) {
			cp.Count++
		}
	}
	return Result{Primes: cp.Count}, nil
}

func isPrime(n int) bool {
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return n >= 2
}
