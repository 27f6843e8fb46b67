// Package primes is the task type docs/runner.md's tutorial builds, step by step: it counts
// the primes below a limit, a pause point and a checkpoint every thousand numbers. The
// tutorial's code blocks are this package's code (tutorial_test.go checks that they are).
package primes

import "errors"

// Params are the params of the "primes" task type (spec.params).
type Params struct {
	Limit int `json:"limit" jsonschema:"required,minimum=2,description=count the primes below this number,example=100000"`
}

// TaskName names the task type (spec.taskName).
func (Params) TaskName() string { return "primes" }

// Validate checks what JSON types cannot say; a task whose params fail it ends Failed with
// reason InvalidParams and this message.
func (p Params) Validate() error {
	if p.Limit < 2 {
		return errors.New(`"limit" must be at least 2`)
	}
	return nil
}
