package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/runner"
)

// engine runs what makes this process a task owner, in order: join (a fencing token and a
// membership Lease), then the journal's writers and the runner, then the sweep (whose first
// pass loads the tasks that were Running or Paused when their owner stopped). On the way out it
// goes in reverse: stop every run (nothing is recorded for them, so their next owner resumes them),
// flush the journal, and release the Lease last, so that no other process takes over a task
// that still runs here. If the Lease is lost, Start returns membership.ErrLost and the process
// exits, to come back with a new fencing token.
type engine struct {
	member        *membership.Member
	journal       *journal.Journal
	runner        *runner.Runner
	sweep         *sweeper
	sweepInterval time.Duration
	ready         chan struct{} // closed once tasks may be handed to the runner
	sharding      bool
	log           logr.Logger
}

// NeedLeaderElection: with leader election on, only the leader owns tasks, unless tasks are
// sharded over every replica.
func (e *engine) NeedLeaderElection() bool { return !e.sharding }

// Start implements manager.Runnable.
func (e *engine) Start(ctx context.Context) error {
	if _, err := e.member.Join(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("join as a task owner: %w", err)
	}
	background := context.WithoutCancel(ctx)
	journalCtx, stopJournal := context.WithCancel(background)
	runnerCtx, stopRunner := context.WithCancel(background)
	journalDone, runnerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(journalDone)
		_ = e.journal.Start(journalCtx)
	}()
	go func() {
		defer close(runnerDone)
		_ = e.runner.Start(runnerCtx)
	}()
	<-e.runner.Started()
	close(e.ready)
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		e.sweep.loop(sweepCtx, e.sweepInterval)
	}()

	// The membership is renewed until every run goroutine returned, not only until ctx ends:
	// a run that ignores its cancellation past the stop grace still executes here, and another
	// process must not take its task over meanwhile.
	memberCtx, stopMember := context.WithCancel(background)
	memberDone := make(chan error, 1)
	go func() { memberDone <- e.member.Run(memberCtx) }()
	var lost error
	select {
	case <-ctx.Done():
	case lost = <-memberDone:
	}

	stopSweep()
	<-sweepDone
	stopRunner()
	<-runnerDone
	if lost == nil {
		select {
		case <-e.runner.Returned():
		default:
			e.log.Info("keeping the membership until the runs that ignore their cancellation return")
			select {
			case <-e.runner.Returned():
			case lost = <-memberDone:
			}
		}
	}
	stopJournal()
	<-journalDone
	stopMember()
	if lost == nil {
		lost = <-memberDone
	}
	if lost != nil {
		return fmt.Errorf("stopped owning tasks: %w", lost)
	}
	if err := e.member.Release(background); err != nil {
		e.log.Info("could not release the membership Lease; other replicas take over when it expires", "error", err.Error())
	}
	return nil
}
