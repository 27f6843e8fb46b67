package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskpilot/taskpilot/test/pgtest"
)

// outageResult is scenario 5c: n long tasks run while the API server is down, then while
// PostgreSQL is down; what each outage costs them. A replica keeps its tasks while it renews
// its membership in either backend (docs/architecture.md, "Outages"), so the target is that
// neither outage stops or resumes any run: no step is done twice.
type outageResult struct {
	n        int
	interval time.Duration // countdown step = checkpoint interval
	api, pg  outageCost
}

// outageCost is what one outage did to the running tasks.
type outageCost struct {
	down time.Duration
	// resumed: tasks with a RUNNING -> RUNNING transition since the outage began (a run
	// stopped and resumed from its checkpoint, redoing the work since); newAttempts: tasks that
	// started another attempt. Both are 0 when the outage stopped nothing.
	resumed, newAttempts int
	// regressed: tasks whose checkpoint is now behind where it was when the outage began.
	regressed int
	// stepsDuring is the mean number of steps a task checkpointed while the outage lasted
	// (the work that went on and reached PostgreSQL: for the API outage about down/interval).
	stepsDuring float64
	// caughtUp is from the recovery until every task has checkpointed two steps more than
	// it had at the recovery (PostgreSQL: the writes that waited in memory were written).
	caughtUp time.Duration
	exited   bool // the operator process exited
}

// runOutage runs scenario 5c on one operator with the production lease settings.
func runOutage(ctx context.Context, e *env, n int, apiDown, pgDown time.Duration) (*outageResult, error) {
	res := &outageResult{n: n, interval: e.opts.crashStep}
	st, err := e.newStageWith(ctx, fmt.Sprintf("outage-%d", n), n+16, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.close() }()
	w, stopWatch := st.watchPhases(ctx, benchNamespace)
	defer stopWatch()
	if err := startCountdowns(ctx, e, st, w, "o", n, "outage: start"); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 3*e.opts.crashStep+2*time.Second)

	res.api, err = measureOutage(ctx, st, apiDown, "API server", func() error {
		_, err := st.cp.env.RestartAPIServer(apiDown)
		return err
	})
	if err != nil {
		return res, err
	}
	res.pg, err = measureOutage(ctx, st, pgDown, "PostgreSQL", func() error {
		if err := st.pg.srv.Stop(pgtest.StopFast); err != nil {
			return fmt.Errorf("stop PostgreSQL: %w", err)
		}
		sleepCtx(ctx, pgDown)
		return st.pg.restart(ctx)
	})
	logf("outage %d: API server down %v: resumed %d, new attempts %d, %.1f steps each meanwhile, caught up %v; PostgreSQL down %v: resumed %d, new attempts %d, caught up %v",
		n, apiDown, res.api.resumed, res.api.newAttempts, res.api.stepsDuring, res.api.caughtUp.Round(time.Millisecond),
		pgDown, res.pg.resumed, res.pg.newAttempts, res.pg.caughtUp.Round(time.Millisecond))
	return res, err
}

// measureOutage runs outage (which returns once the backend is back) and measures its cost.
func measureOutage(ctx context.Context, st *stage, down time.Duration, what string, outage func() error) (outageCost, error) {
	c := outageCost{down: down}
	before, err := checkpoints(ctx, st, benchNamespace)
	if err != nil {
		return c, err
	}
	began := time.Now()
	progressf("[%s] %s down for %v", st.name, what, down)
	if err := outage(); err != nil {
		return c, err
	}
	recovered := time.Now()
	var atRecovery map[string]checkpointRow
	// The first read after PostgreSQL's return may meet a pool connection it closed.
	if err := waitFor(ctx, "outage: read checkpoints", time.Minute, func() (bool, string, error) {
		atRecovery, err = checkpoints(ctx, st, benchNamespace)
		return err == nil, fmt.Sprint(err), nil
	}); err != nil {
		return c, err
	}
	var steps int
	for name, b := range before {
		steps += atRecovery[name].done - b.done
	}
	c.stepsDuring = float64(steps) / float64(max(len(before), 1))
	label := "outage: every task checkpoints after " + strings.ToLower(what) + " is back"
	if err := waitFor(ctx, label, 3*time.Minute, func() (bool, string, error) {
		now, err := checkpoints(ctx, st, benchNamespace)
		if err != nil {
			return false, err.Error(), nil
		}
		behind := 0
		for name, r := range atRecovery {
			if now[name].done < r.done+2 {
				behind++
			}
		}
		return behind == 0, fmt.Sprintf("%d tasks behind", behind), nil
	}); err != nil {
		return c, err
	}
	c.caughtUp = time.Since(recovered)
	after, err := checkpoints(ctx, st, benchNamespace)
	if err != nil {
		return c, err
	}
	for name, b := range before {
		if after[name].done < b.done {
			c.regressed++
		}
	}
	if err := st.pool.QueryRow(ctx, `/*bench*/ SELECT
  count(DISTINCT h.task_uid) FILTER (WHERE h.from_status = 'RUNNING' AND h.to_status = 'RUNNING'),
  count(DISTINCT h.task_uid) FILTER (WHERE h.attempt > 1)
FROM background_task_transitions h JOIN background_tasks t ON t.uid = h.task_uid
WHERE t.namespace = $1 AND h.at > $2`, benchNamespace, began).Scan(&c.resumed, &c.newAttempts); err != nil {
		return c, fmt.Errorf("count resumes: %w", err)
	}
	select {
	case <-st.op.Exited():
		c.exited = true
	default:
	}
	return c, nil
}
