package controllers

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/journal"
	"github.com/taskpilot/taskpilot/internal/membership"
)

// taskOwner runs what makes this process a task owner, in order: join (a fencing token and a
// membership Lease), then the journal's writers and the runner, then the sweep (whose first
// pass loads the tasks that were Running or Paused when their owner stopped). On the way out it
// goes in reverse: stop every run (nothing is recorded for them, so their next owner resumes them),
// flush the journal, and release the Lease last, so that no other process takes over a task
// that still runs here. If the membership is lost (neither the Lease nor the row renewed in
// time), Start returns membership.ErrLost and the process exits, to come back with a new
// fencing token.
type taskOwner struct {
	// prepare readies the database (the schema migrated) before anything else; retried with
	// backoff until it succeeds: a replica never exits because PostgreSQL is away.
	prepare       func(context.Context) error
	stage         atomic.Pointer[string] // why this process does not own tasks yet ("" once it does)
	member        *membership.Member
	journal       *journal.Journal
	runner        *engine.Runner
	sweep         *sweeper
	sweepInterval time.Duration
	// privileges checks the database role before joining (a role that lacks what the
	// operator needs is told apart from an outage).
	privileges *privilegeCheck
	ready      chan struct{} // closed once tasks may be handed to the runner
	log        logr.Logger
}

// NeedLeaderElection: every replica owns tasks (the leader adopts the new ones, without
// sharding; a replica that stops leading keeps its own).
func (e *taskOwner) NeedLeaderElection() bool { return false }

// notReady says why this process does not own tasks yet, "" once it does.
func (e *taskOwner) notReady() string {
	if s := e.stage.Load(); s != nil {
		return *s
	}
	return "starting"
}

func (e *taskOwner) setStage(s string) { e.stage.Store(&s) }

// prepareDatabase runs prepare until it succeeds or ctx ends, waiting 1 s, 2 s, 4 s ... 30 s
// between attempts and saying why in the log and on /readyz.
func (e *taskOwner) prepareDatabase(ctx context.Context) error {
	if e.prepare == nil {
		return nil
	}
	e.setStage("preparing the database (schema migration)")
	retry := wait.Backoff{Duration: time.Second, Factor: 2, Cap: 30 * time.Second, Steps: math.MaxInt32}
	for {
		err := e.prepare(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in := retry.Step()
		e.setStage("cannot prepare the database: " + err.Error())
		e.log.Info("cannot prepare the database; retrying (this process stays up, not ready)", "error", err.Error(), "in", in)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(in):
		}
	}
}

// waitForPrivileges checks that the database role has what the operator needs before it joins,
// and while it has not, says which role lacks what (log, /readyz, taskpilot_database_missing_privileges)
// and checks again every 10 s: a grant, not a retry, mends it.
func (e *taskOwner) waitForPrivileges(ctx context.Context) error {
	if e.privileges == nil {
		return nil
	}
	for {
		why, err := e.privileges.check(ctx)
		switch {
		case err == nil && why == "":
			return nil
		case err != nil:
			e.log.Info("cannot check the database role's privileges; joining anyway", "error", err.Error())
			return nil
		}
		e.setStage(why)
		e.log.Info("the database role lacks privileges the operator needs; checking again in 10s (this process stays up, not ready)",
			"problem", why)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
		}
	}
}

// Start implements manager.Runnable.
func (e *taskOwner) Start(ctx context.Context) error {
	if err := e.prepareDatabase(ctx); err != nil {
		return nil // ctx ended
	}
	if err := e.waitForPrivileges(ctx); err != nil {
		return nil // ctx ended
	}
	e.setStage("joining as a task owner (an epoch and a membership row from PostgreSQL)")
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
	e.setStage("")
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
		// Neither backend renewed the membership within the renew deadline (or another process
		// took it): this process may no longer prove that it owns its tasks, and another may
		// take them over, so it stopped every run. It ends, to come back as a new member with
		// a new epoch (the kubelet restarts the container; at start-up it waits, not ready,
		// for the backends instead of exiting).
		return fmt.Errorf("stopped owning tasks: %w", lost)
	}
	if err := e.member.Release(background); err != nil {
		e.log.Info("could not release the membership Lease; other replicas take over when it expires", "error", err.Error())
	}
	return nil
}
