package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/taskpilot/taskpilot/internal/pgtext"
)

// An item's state (background_task_items.state).
const (
	ItemPending   = "pending"
	ItemRunning   = "running"
	ItemSucceeded = "succeeded"
	ItemFailed    = "failed"
)

// An execution's outcome, as the run reports it (ItemOutcome.Outcome).
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	// OutcomeInterrupted: the run was stopped, paused away or moved while the item executed;
	// it goes back to pending and the execution does not count as a failure.
	OutcomeInterrupted = "interrupted"
)

// MaxItemErrorChars bounds an item's stored error message.
const MaxItemErrorChars = 1024

// ItemPlan is what a run of a task with items asks of its rows (spec.items, read by the
// controller when it starts the run).
type ItemPlan struct {
	// Count seeds items 0..Count-1 without values; List seeds one item per element, with it
	// as its value. A plan has one of the two.
	Count int
	List  []json.RawMessage
	// MaxRetries: a failed execution is retried while the item failed at most this often.
	MaxRetries int
	// Generation is the task's restart generation: items of an older one are reset, all of
	// them, or only those that did not succeed when KeepSucceeded (retry-failed).
	Generation    int64
	KeepSucceeded bool
}

// Total is how many items the plan has.
func (p ItemPlan) Total() int {
	if len(p.List) > 0 {
		return len(p.List)
	}
	return p.Count
}

// ItemCounts is how many of a task's items are in each state.
type ItemCounts struct {
	Pending, Running, Succeeded, Failed int64
}

// Total is the number of items.
func (c ItemCounts) Total() int64 { return c.Pending + c.Running + c.Succeeded + c.Failed }

// ClaimedItem is one item a run claimed: it is running, as execution Execution.
type ClaimedItem struct {
	Index     int             `gorm:"column:idx"`
	Value     json.RawMessage `gorm:"column:value"`
	Execution int             `gorm:"column:executions"`
	// Generation is the restart generation the item runs in.
	Generation int64 `gorm:"column:generation"`
}

// ItemOutcome is how one execution of an item ended.
type ItemOutcome struct {
	Index     int    `json:"idx"`
	Execution int    `json:"execution"`
	Outcome   string `json:"outcome"`
	Error     string `json:"err"`
}

// ItemFailure is a failed item, for the status and the plugin.
type ItemFailure struct {
	Index int    `gorm:"column:idx"`
	Error string `gorm:"column:error"`
}

// ownedBy is the fence of every item write: the task's row is still owner's. It locks the row
// FOR SHARE, so a takeover (an UPDATE of the row's owner) waits for the item write to commit,
// and the new owner's BeginItems sees the items it claimed (and takes them back); an item
// write that waited for a takeover re-reads the row and finds it is no longer owner's.
const ownedBy = `EXISTS (SELECT 1 FROM background_tasks t
    WHERE t.uid = CAST(@uid AS text) AND t.owner_epoch = CAST(@epoch AS bigint) AND t.deleted_at IS NULL
    FOR SHARE)`

// resetItemsSQL puts the items %s selects back to pending (or, for succeeded ones kept by a
// retry-failed, leaves their state), in their restart generation, recording a transition for
// every item whose state changes. Their failures start again from 0, except for an interrupted
// execution (@interrupted): a crash does not give an item fresh retries.
const resetItemsSQL = `
WITH o AS (
  SELECT idx, state AS old FROM background_task_items
  WHERE task_uid = CAST(@uid AS text) AND %s AND ` + ownedBy + `
  FOR UPDATE
), u AS (
  UPDATE background_task_items i SET
    state = CASE WHEN o.old = 'succeeded' AND CAST(@keep AS boolean) THEN 'succeeded' ELSE 'pending' END,
    failures = CASE WHEN (o.old = 'succeeded' AND CAST(@keep AS boolean)) OR CAST(@interrupted AS boolean) THEN i.failures ELSE 0 END,
    error = CASE WHEN (o.old = 'succeeded' AND CAST(@keep AS boolean)) OR CAST(@interrupted AS boolean) THEN i.error ELSE '' END,
    generation = CAST(@gen AS bigint),
    seq = i.seq + CASE WHEN o.old = 'pending' OR (o.old = 'succeeded' AND CAST(@keep AS boolean)) THEN 0 ELSE 1 END
  FROM o
  WHERE i.task_uid = CAST(@uid AS text) AND i.idx = o.idx
  RETURNING i.idx, o.old, i.state, i.seq, i.executions
)
INSERT INTO background_task_item_transitions
  (task_uid, idx, seq, from_state, to_state, execution, task_attempt, reason, at, owner_epoch)
SELECT CAST(@uid AS text), idx, seq, old, state, executions, CAST(@attempt AS integer), CAST(@reason AS text), now(), CAST(@epoch AS bigint)
FROM u WHERE old <> state`

const seedCountSQL = `
INSERT INTO background_task_items (task_uid, idx, generation)
SELECT CAST(@uid AS text), g, CAST(@gen AS bigint) FROM generate_series(0, CAST(@n AS integer) - 1) g
WHERE ` + ownedBy + `
ON CONFLICT (task_uid, idx) DO NOTHING`

const seedListSQL = `
INSERT INTO background_task_items (task_uid, idx, value, generation)
SELECT CAST(@uid AS text), CAST(ord - 1 AS integer), v, CAST(@gen AS bigint)
FROM jsonb_array_elements(CAST(@list AS jsonb)) WITH ORDINALITY AS t(v, ord)
WHERE ` + ownedBy + `
ON CONFLICT (task_uid, idx) DO NOTHING`

const countItemsSQL = `SELECT state, count(*) AS n FROM background_task_items WHERE task_uid = ? GROUP BY state`

// BeginItems prepares uid's items for a run of attempt by owner, in one transaction:
//   - items of an older restart generation are reset (all, or all but the succeeded ones when
//     plan.KeepSucceeded);
//   - items left running by an earlier run (a crash, a move, a stop) are pending again: one run
//     of a task executes its items at a time, so nothing else runs them;
//   - items that failed in an earlier attempt are pending again (the task's retry);
//   - missing items are seeded (the first run).
//
// It returns the counts. ErrFenced (an *OwnedError) when the row is not owner's.
func (r *Repository) BeginItems(ctx context.Context, uid string, owner Owner, attempt int, plan ItemPlan) (ItemCounts, error) {
	var counts ItemCounts
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		args := map[string]any{"uid": uid, "epoch": owner.Epoch, "gen": plan.Generation, "attempt": attempt}
		steps := []struct {
			where, reason     string
			keep, interrupted bool
		}{
			{"generation < CAST(@gen AS bigint)", "Restarted", plan.KeepSucceeded, false},
			{"state = 'running'", "Interrupted", false, true},
			{"state = 'failed' AND task_attempt < CAST(@attempt AS integer)", "Retried", false, false},
		}
		for _, s := range steps {
			args["keep"], args["reason"], args["interrupted"] = s.keep, s.reason, s.interrupted
			if err := tx.Exec(fmt.Sprintf(resetItemsSQL, s.where), args).Error; err != nil {
				return fmt.Errorf("reset items (%s): %w", s.reason, err)
			}
		}
		var err error
		if counts, err = countItems(tx, uid); err != nil {
			return err
		}
		if counts.Total() >= int64(plan.Total()) {
			return nil
		}
		var seed *gorm.DB
		if len(plan.List) > 0 {
			list, merr := json.Marshal(plan.List)
			if merr != nil {
				return fmt.Errorf("encode the item list: %w", merr)
			}
			args["list"] = string(list)
			seed = tx.Exec(seedListSQL, args)
		} else {
			args["n"] = plan.Count
			seed = tx.Exec(seedCountSQL, args)
		}
		if seed.Error != nil {
			return fmt.Errorf("seed %d items: %w", plan.Total(), seed.Error)
		}
		counts.Pending += seed.RowsAffected
		return nil
	})
	if err != nil {
		return ItemCounts{}, fmt.Errorf("begin the items of %s: %w", uid, err)
	}
	if counts.Total() < int64(plan.Total()) {
		// Nothing could be seeded: the fence held the inserts back.
		return counts, r.diagnose(ctx, uid, owner, "begin the items", nil, 0)
	}
	return counts, nil
}

// ItemCountsOf returns how many of uid's items are in each state (all zero without items).
func (r *Repository) ItemCountsOf(ctx context.Context, uid string) (ItemCounts, error) {
	c, err := countItems(r.db.WithContext(ctx), uid)
	if err != nil {
		return c, fmt.Errorf("count the items of %s: %w", uid, err)
	}
	return c, nil
}

func countItems(db *gorm.DB, uid string) (ItemCounts, error) {
	var rows []struct {
		State string
		N     int64
	}
	if err := db.Raw(countItemsSQL, uid).Scan(&rows).Error; err != nil {
		return ItemCounts{}, fmt.Errorf("count items: %w", err)
	}
	var c ItemCounts
	for _, row := range rows {
		switch row.State {
		case ItemPending:
			c.Pending = row.N
		case ItemRunning:
			c.Running = row.N
		case ItemSucceeded:
			c.Succeeded = row.N
		case ItemFailed:
			c.Failed = row.N
		}
	}
	return c, nil
}

const claimItemsSQL = `
WITH c AS (
  SELECT idx FROM background_task_items
  WHERE task_uid = CAST(@uid AS text) AND state = 'pending' AND idx >= CAST(@from AS integer) AND ` + ownedBy + `
  ORDER BY idx LIMIT CAST(@n AS integer)
  FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE background_task_items i SET state = 'running', executions = i.executions + 1,
    task_attempt = CAST(@attempt AS integer), owner_epoch = CAST(@epoch AS bigint),
    started_at = now(), finished_at = NULL, seq = i.seq + 1
  FROM c WHERE i.task_uid = CAST(@uid AS text) AND i.idx = c.idx
  RETURNING i.idx, i.value, i.executions, i.seq, i.generation
), h AS (
  INSERT INTO background_task_item_transitions
    (task_uid, idx, seq, from_state, to_state, execution, task_attempt, reason, at, owner_epoch)
  SELECT CAST(@uid AS text), idx, seq, 'pending', 'running', executions, CAST(@attempt AS integer), 'Claimed', now(), CAST(@epoch AS bigint)
  FROM u
)
SELECT idx, value, executions, generation FROM u ORDER BY idx`

// ClaimItems marks up to n pending items of uid running for owner's run of attempt, lowest
// index first, with their transitions, in one statement, and returns them. None when no item is
// pending; ErrFenced when the row is not owner's.
func (r *Repository) ClaimItems(ctx context.Context, uid string, owner Owner, attempt, n int) ([]ClaimedItem, error) {
	return r.ClaimItemsFrom(ctx, uid, owner, attempt, n, 0)
}

// ClaimItemsFrom is ClaimItems from index from on, then from 0 when that found fewer than n. A
// run claims from past the last index it claimed: the pending index keeps the entries of the
// items claimed before until VACUUM, and a scan from 0 would step over all of them every time.
func (r *Repository) ClaimItemsFrom(ctx context.Context, uid string, owner Owner, attempt, n, from int) ([]ClaimedItem, error) {
	out, err := r.claimItems(ctx, uid, owner, attempt, n, from)
	if err != nil {
		return nil, err
	}
	if len(out) < n && from > 0 {
		more, err := r.claimItems(ctx, uid, owner, attempt, n-len(out), 0)
		if err != nil && len(out) == 0 {
			return nil, err
		}
		// With some claimed, a failed second claim is no error: those are running for this run
		// now, and must not be dropped.
		out = append(out, more...)
	}
	if len(out) == 0 {
		if ferr := r.fenced(ctx, uid, owner, "claim items"); ferr != nil {
			return nil, ferr
		}
	}
	return out, nil
}

func (r *Repository) claimItems(ctx context.Context, uid string, owner Owner, attempt, n, from int) ([]ClaimedItem, error) {
	var out []ClaimedItem
	err := r.db.WithContext(ctx).Raw(claimItemsSQL, map[string]any{
		"uid": uid, "epoch": owner.Epoch, "attempt": attempt, "n": n, "from": from,
	}).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("claim %d items of %s: %w", n, uid, err)
	}
	return out, nil
}

const finishItemsSQL = `
WITH o AS MATERIALIZED (
  SELECT * FROM jsonb_to_recordset(CAST(@outcomes AS jsonb)) AS o(idx integer, execution integer, outcome text, err text)
), t AS MATERIALIZED (
  -- Each outcome finds its item by the primary key: one probe per outcome, whatever the
  -- statistics say (a join left to the planner, with stale statistics after the seeding,
  -- was a nested loop over every pair: quadratic in the batch).
  SELECT x.tid, o.*, CAST(@uid AS text) AS uid, CAST(@epoch AS bigint) AS epoch FROM o
  CROSS JOIN LATERAL (
    SELECT ctid AS tid FROM background_task_items
    WHERE task_uid = CAST(@uid AS text) AND idx = o.idx AND state = 'running'
      AND executions = o.execution AND owner_epoch = CAST(@epoch AS bigint)
    LIMIT 1 -- (idx is unique) keeps the planner from flattening the probe into a join
  ) x
), u AS (
  UPDATE background_task_items i SET
    state = CASE
      WHEN t.outcome = 'succeeded' THEN 'succeeded'
      WHEN t.outcome = 'failed' AND i.failures >= CAST(@retries AS integer) THEN 'failed'
      ELSE 'pending' END,
    failures = i.failures + CASE WHEN t.outcome = 'failed' THEN 1 ELSE 0 END,
    error = CASE WHEN t.outcome = 'failed' THEN t.err ELSE i.error END,
    finished_at = now(), seq = i.seq + 1
  FROM t
  -- The guard again, for a row changed since t read it (the update re-checks the latest one),
  -- written against t's columns so that it is a join condition: as conditions on the items
  -- alone they made the planner expect one row and scan the items first.
  WHERE i.ctid = t.tid AND (i.task_uid, i.idx, i.state, i.executions, i.owner_epoch) = (t.uid, t.idx, 'running', t.execution, t.epoch)
    AND ` + ownedBy + `
  RETURNING i.idx, i.state, i.seq, i.executions, t.outcome, t.err
), h AS (
  INSERT INTO background_task_item_transitions
    (task_uid, idx, seq, from_state, to_state, execution, task_attempt, reason, message, at, owner_epoch)
  SELECT CAST(@uid AS text), idx, seq, 'running', state, executions, CAST(@attempt AS integer),
    CASE outcome WHEN 'succeeded' THEN 'Succeeded' WHEN 'interrupted' THEN 'Interrupted'
      ELSE CASE WHEN state = 'failed' THEN 'Failed' ELSE 'Retrying' END END,
    CASE WHEN outcome = 'failed' THEN err ELSE '' END, now(), CAST(@epoch AS bigint)
  FROM u
)
SELECT idx, state FROM u`

// FinishItems records how executions of uid's items ended, all in one statement: succeeded;
// failed (pending again while the item failed at most maxRetries times before, else failed);
// interrupted (pending again). Each item is guarded: it must still be running the same
// execution for owner, so a late report of a fenced owner changes nothing. It returns the items
// that failed for good. An error wrapping ErrFenced says how many outcomes were not recorded.
func (r *Repository) FinishItems(ctx context.Context, uid string, owner Owner, attempt, maxRetries int, outcomes []ItemOutcome) ([]int, error) {
	if len(outcomes) == 0 {
		return nil, nil
	}
	clean := make([]ItemOutcome, len(outcomes))
	for i, o := range outcomes {
		o.Error = pgtext.Text(o.Error, MaxItemErrorChars)
		clean[i] = o
	}
	doc, err := json.Marshal(clean)
	if err != nil {
		return nil, fmt.Errorf("finish items of %s: encode: %w", uid, err)
	}
	type finished struct {
		idx   int
		state string
	}
	done, err := scanAll(r.db.WithContext(ctx).Raw(finishItemsSQL, map[string]any{
		"uid": uid, "epoch": owner.Epoch, "attempt": attempt, "retries": maxRetries, "outcomes": string(doc),
	}), func(rows *sql.Rows, f *finished) error { return rows.Scan(&f.idx, &f.state) })
	if err != nil {
		return nil, fmt.Errorf("finish %d items of %s: %w", len(outcomes), uid, err)
	}
	var failed []int
	for _, d := range done {
		if d.state == ItemFailed {
			failed = append(failed, d.idx)
		}
	}
	if len(done) < len(outcomes) {
		ferr := r.fenced(ctx, uid, owner, "finish items")
		if ferr == nil {
			ferr = ErrFenced // the row is ours, but these items are not running this execution for us
		}
		return failed, fmt.Errorf("%d of %d item outcomes of %s not recorded: %w", len(outcomes)-len(done), len(outcomes), uid, ferr)
	}
	return failed, nil
}

// fenced is nil when uid's row is owner's, else why not.
func (r *Repository) fenced(ctx context.Context, uid string, owner Owner, what string) error {
	err := r.diagnose(ctx, uid, owner, what, nil, 0)
	if errors.Is(err, ErrConflict) {
		return nil // owned: diagnose reports the row's state as a conflict
	}
	return err
}

const firstFailuresSQL = `
SELECT idx, error FROM background_task_items
WHERE task_uid = ? AND state = 'failed' ORDER BY idx LIMIT ?`

// FirstFailedItems returns up to n failed items of uid, lowest index first.
func (r *Repository) FirstFailedItems(ctx context.Context, uid string, n int) ([]ItemFailure, error) {
	var out []ItemFailure
	if err := r.db.WithContext(ctx).Raw(firstFailuresSQL, uid, n).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("failed items of %s: %w", uid, err)
	}
	return out, nil
}
