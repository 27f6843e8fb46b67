package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/pgtext"
	"github.com/taskpilot/taskpilot/runner"
)

// maxPanicMessage bounds the panic text (value + stack) put in a transition,
// which ends up in a Kubernetes condition and an event.
const maxPanicMessage = 4 << 10

// verdict is how a run ended, before it is reported.
type verdict struct {
	state    lifecycle.Status
	reason   string
	message  string
	err      error
	result   json.RawMessage
	shutdown bool // runner shutdown: report nothing, call no Post
}

// main is the run goroutine: it owns the task's hooks from admission to the
// terminal transition.
func (e *entry) main() {
	defer e.r.wg.Done()
	defer func() {
		abandoned := e.cleanup()
		close(e.exited)
		if f := e.r.opts.Returned; abandoned && f != nil {
			f(e.key) // the next run of the key may start now
		}
	}()
	if err := e.waitRunnable(e.ctx); err != nil {
		// Stopped or shut down before Pre: nothing to clean up in the task.
		e.finish(e.judge("", nil, err, ""))
		return
	}
	if !e.r.leaseValid() {
		return // another process may run the task now: never start it here
	}
	e.finish(e.execute())
}

// execute runs Pre, Run and Post with panic recovery.
func (e *entry) execute() verdict {
	hook := "pre"
	panicMsg, err := e.call(hook, func() error { return e.task.Pre(e.ctx, e) })
	var result json.RawMessage
	if err == nil && panicMsg == "" {
		hook = "run"
		panicMsg, err = e.call(hook, func() error {
			var rerr error
			result, rerr = e.task.Run(e.ctx, e)
			return rerr
		})
	}
	v := e.judge(hook, result, err, panicMsg)
	if v.shutdown {
		return v
	}
	// Post's context survives StopTask (cleanup must be able to finish) but
	// not runner shutdown or the loss of the membership lease.
	out := Outcome{Phase: v1alpha1.Phase(v.state.Phase()), Err: v.err, Result: v.result}
	postPanic, postErr := e.call("post", func() error { return e.task.Post(e.r.base, out) })
	switch {
	case postPanic != "":
		return verdict{state: lifecycle.Failed, reason: lifecycle.ReasonPanic, message: postPanic, err: errors.New(postPanic)}
	case postErr != nil:
		v.message = joinMessage(v.message, "post: "+postErr.Error())
	}
	return v
}

// call runs one hook, turning a panic into a bounded message.
func (e *entry) call(hook string, f func() error) (panicMsg string, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicMsg = truncate(fmt.Sprintf("panic in %s: %v\n%s", hook, p, debug.Stack()), maxPanicMessage)
			e.r.opts.Logger.Error(fmt.Errorf("task panicked: %v", p), "recovered task panic",
				"key", e.key, "task", e.spec.TaskName, "hook", hook)
		}
	}()
	return "", f()
}

// judge classifies how Pre/Run ended. Precedence: shutdown (not an outcome),
// panic (a bug must be visible), stop (the user's request wins over whatever
// the task returned), timeout, error, success.
func (e *entry) judge(hook string, result json.RawMessage, err error, panicMsg string) verdict {
	cause := context.Cause(e.ctx)
	if e.ctx.Err() != nil && (errors.Is(cause, runner.ErrShutdown) || errors.Is(cause, runner.ErrLeaseLost) || errors.Is(cause, runner.ErrHandedOver)) {
		return verdict{shutdown: true}
	}
	if panicMsg != "" {
		return verdict{state: lifecycle.Failed, reason: lifecycle.ReasonPanic, message: panicMsg, err: errors.New(panicMsg)}
	}
	if e.ctx.Err() != nil {
		switch {
		case errors.Is(cause, runner.ErrStopped):
			return verdict{state: lifecycle.Stopped, reason: e.stopReason, message: e.stopMessage, err: runner.ErrStopped}
		case errors.Is(cause, runner.ErrDeadlineExceeded):
			return verdict{state: lifecycle.Failed, reason: lifecycle.ReasonDeadlineExceeded, err: runner.ErrDeadlineExceeded,
				message: fmt.Sprintf("running time exceeded the %s timeout", e.spec.Timeout)}
		}
	}
	if err != nil {
		msg := err.Error()
		if hook == "pre" {
			msg = "pre: " + msg
		}
		reason := lifecycle.ReasonError
		if errors.Is(err, runner.ErrPermanent) {
			reason = lifecycle.ReasonPermanentError
		}
		return verdict{state: lifecycle.Failed, reason: reason, message: msg, err: err}
	}
	if len(result) > 0 {
		stored, size, err := pgtext.JSON(result)
		switch {
		case err != nil:
			err = fmt.Errorf("run returned a result PostgreSQL cannot store: %w", err)
			return verdict{state: lifecycle.Failed, reason: lifecycle.ReasonError, message: err.Error(), err: err}
		case size > MaxResultBytes:
			err := fmt.Errorf("run returned a result of %d bytes as PostgreSQL stores it (jsonb), more than the %d allowed: "+
				"keep large outputs elsewhere and return a reference to them", size, MaxResultBytes)
			return verdict{state: lifecycle.Failed, reason: lifecycle.ReasonResultTooLarge, message: err.Error(), err: err}
		}
		result = stored
	}
	return verdict{state: lifecycle.Finished, reason: lifecycle.ReasonCompleted, result: result}
}

// finish reports the verdict unless the grace timer already did, then frees
// the slot.
func (e *entry) finish(v verdict) {
	if v.shutdown {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Terminal() {
		e.r.opts.Logger.Info("abandoned task returned after its stop grace", "key", e.key, "task", e.spec.TaskName)
		return
	}
	e.withdrawLocked()
	e.result = v.result
	e.transitionLocked(v.state, v.reason, v.message)
	e.releaseSlotLocked()
	e.releaseMemoryLocked()
}

// cleanup runs when the goroutine exits, whatever happened: no timer may
// outlive it and no slot may leak (shutdown skips finish). It reports whether the run had been
// abandoned.
func (e *entry) cleanup() (abandoned bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deadline != nil {
		e.deadline.Stop()
		e.deadline = nil
	}
	if e.grace != nil {
		e.grace.Stop()
	}
	if e.abandoned {
		e.abandoned, abandoned = false, true
		e.r.abandoned.Add(-1)
	}
	e.withdrawLocked()
	e.releaseSlotLocked()
	e.releaseMemoryLocked()
	e.endSpanUnreportedLocked(context.Cause(e.ctx))
	e.task = nil // a terminal entry may be kept until Forget; do not pin the task's memory
	return abandoned
}

func joinMessage(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
