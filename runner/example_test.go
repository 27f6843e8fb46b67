package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// This file holds the task type of docs/runner.md's tutorial, so that it is compiled and run by
// go test.

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

type primesTask struct {
	runner.Base // no-op Pre and Post
	p           PrimesParams
}

func newPrimesTask(p PrimesParams) (runner.Task, error) { return &primesTask{p: p}, nil }

func (t *primesTask) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	var cp primesCheckpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil { // resume if we have one
		return nil, err
	}
	n := max(cp.Next, 2)
	for ; n < t.p.Limit; n++ {
		if n%1000 == 0 {
			if err := ctl.Yield(ctx); err != nil { // pause point; stop/timeout land here
				return nil, err
			}
			ctl.SetProgress(fmt.Sprintf("%d/%d", n, t.p.Limit))
			if err := ctl.SaveCheckpoint(ctx, primesCheckpoint{Next: n, Count: cp.Count}); err != nil {
				return nil, err
			}
		}
		if isPrime(n) {
			cp.Count++
		}
	}
	return json.Marshal(map[string]int{"primes": cp.Count})
}

func isPrime(n int) bool {
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return n >= 2
}

type printSink struct{ done chan struct{} }

func (s printSink) Transition(t runner.Transition) {
	fmt.Printf("%q -> %s (%s)%s\n", t.From, t.To, t.Reason, t.Result)
	if t.To.Terminal() {
		close(s.done)
	}
}

// Example registers a typed task type and runs it through a runner, as the operator does.
func Example() {
	reg := runner.NewRegistry()
	if err := runner.Register(reg, "Counts the primes below a limit", newPrimesTask); err != nil {
		panic(err)
	}

	sink := printSink{done: make(chan struct{})}
	r, err := runner.New(runner.Options{Registry: reg, Sink: sink})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = r.Start(ctx); close(stopped) }()
	<-r.Started()

	err = r.StartTask("uid-1", runner.StartSpec{
		TaskName: "primes", Params: json.RawMessage(`{"limit":5000}`), Attempt: 1, Timeout: time.Minute,
	})
	if err != nil {
		panic(err)
	}
	<-sink.done
	cancel()
	<-stopped
	// Output:
	// "" -> RUNNING (Started)
	// "RUNNING" -> FINISHED (Completed){"primes":669}
}
