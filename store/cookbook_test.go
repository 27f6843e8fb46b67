package store

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// cookbookPath is docs/schema.md relative to this package.
const cookbookPath = "../docs/schema.md"

// cookbookQuery matches a marker line followed by a ```sql fenced block.
var cookbookQuery = regexp.MustCompile("(?s)<!-- query: ([a-z0-9-]+) -->\\s*```sql\\n(.*?)```")

// TestSQLCookbook runs every query of the documentation's SQL cookbook,
// unchanged, against fixture data recorded through the repository, and checks
// the rows each one returns.
func TestSQLCookbook(t *testing.T) {
	doc, err := os.ReadFile(cookbookPath)
	require.NoError(t, err)
	matches := cookbookQuery.FindAllStringSubmatch(string(doc), -1)
	require.GreaterOrEqual(t, len(matches), 8, "the cookbook documents at least 8 queries")

	repo := newRepo(t)
	loadCookbookFixture(t, repo)

	checks := map[string]func(t *testing.T, rows []map[string]string){
		"running-by-type": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"backup", "1"}, {"email", "2"}}, project(rows, "task_name", "running"))
		},
		"failures-last-hour": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{
				{"nightly-report", "1", "disk full"},
				{"failing-backup", "1", "timeout"},
				{"db-backup", "2", "timeout"},
			}, project(rows, "name", "attempt", "message"))
		},
		"avg-run-time-by-type": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"report", "2", "200.0"}}, project(rows, "task_name", "finished", "avg_seconds"))
		},
		"failed-task-traces": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"ops", "failing-backup", "4bf92f3577b34da6a3ce929d0e0e4736"}}, project(rows, "namespace", "name", "trace_id"))
		},
		"paused-over-a-day": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"default", "paused-old", "cleanup"}}, project(rows, "namespace", "name", "task_name"))
		},
		"task-history": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{
				{"1", "<nil>", "PENDING", "0", "Created"},
				{"2", "PENDING", "RUNNING", "1", "Started"},
				{"3", "RUNNING", "FAILED", "1", "Error"},
				{"4", "FAILED", "PENDING", "2", "Restarted"},
				{"5", "PENDING", "RUNNING", "2", "Started"},
				{"6", "RUNNING", "FINISHED", "2", "Completed"},
			}, project(rows, "seq", "from_status", "to_status", "attempt", "reason"))
		},
		"running-progress": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"db-backup", "50%"}, {"send-a", "3/10"}, {"send-b", "7/10"}},
				project(rows, "name", "progress"))
		},
		"retries-per-task": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"db-backup", "RUNNING", "2"}}, project(rows, "name", "status", "retries"),
				"a restart is not a retry")
		},
		"throughput-per-minute": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"0", "1"}, {"0", "1"}, {"0", "1"}, {"1", "0"}}, project(rows, "finished", "failed"))
		},
		"status-overview": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"FAILED", "2"}, {"FINISHED", "2"}, {"PAUSED", "2"}, {"RUNNING", "3"}},
				project(rows, "status", "tasks"))
		},
		"rejected-records": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"rejected-one", "1", "the transition to FINISHED could not be recorded"}},
				project(rows, "name", "attempt", "message"))
		},
		"stalled-last-day": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"db-backup", "backup"}}, project(rows, "name", "task_name"))
		},
		"purged-per-day": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"1", "3"}}, project(rows, "tasks", "transitions"))
		},
		"live-members": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"op-1", "1"}}, project(rows, "identity", "epoch"), "op-2 shut down")
		},
		"not-run-last-day": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{
				{"default", "nightly-checksum", "skipped", "Forbid: nightly-checksum-1 still active (concurrencyPolicy Forbid)"},
				{"default", "nightly-checksum", "missed", "Late: 3h0m0s late, past its starting deadline of 1m0s (catchUp Skip)"},
			}, project(rows, "namespace", "schedule", "outcome", "reason"))
		},
		"queue-wait-per-hour": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"default", "mail", "2", "60.0"}}, project(rows, "namespace", "queue", "admitted", "avg_wait_seconds"))
		},
		"queue-tenants": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"default", "mail", "", "1", "0"}, {"default", "mail", "acme", "0", "1"}, {"default", "mail", "globex", "0", "1"}},
				project(rows, "namespace", "queue", "tenant", "waiting", "running"))
		},
		"items-by-state": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"send-b", "failed", "2"}, {"send-b", "running", "1"}, {"send-b", "succeeded", "7"}},
				project(rows, "name", "state", "items"))
		},
		"slowest-items": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"send-b", "4", "90.0"}, {"send-b", "2", "30.0"}, {"send-b", "0", "0.0"}},
				project(rows, "name", "idx", "seconds")[:3])
		},
		"item-failures": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"send-b", "550 no such user", "1", "8"}, {"send-b", "mailbox full", "1", "7"}},
				project(rows, "name", "error", "items", "first_item"))
		},
		"tasks-per-owner": func(t *testing.T, rows []map[string]string) {
			require.Equal(t, [][]string{{"op-1", "1", "4", "8"}, {"op-2", "2", "1", "1"}}, project(rows, "owner", "owner_epoch", "active", "tasks"))
		},
	}

	seen := map[string]bool{}
	for _, m := range matches {
		name, query := m[1], m[2]
		require.False(t, seen[name], "duplicate query name %s", name)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			require.True(t, ok, "query %s has no assertions in cookbook_test.go", name)
			check(t, runQuery(t, repo, query))
		})
	}
	for name := range checks {
		require.True(t, seen[name], "query %s is checked but missing from %s", name, cookbookPath)
	}
}

// runQuery runs sql and returns each row as column name -> text.
func runQuery(t *testing.T, repo *Repository, sql string) []map[string]string {
	t.Helper()
	rows, err := repo.sqlDB.QueryContext(testCtx(t), sql)
	require.NoError(t, err, sql)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		row := map[string]string{}
		for i, c := range cols {
			switch v := vals[i].(type) {
			case []byte:
				row[c] = string(v)
			case time.Time:
				row[c] = v.UTC().Format(time.RFC3339)
			default:
				row[c] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	require.NoError(t, rows.Err())
	return out
}

func project(rows []map[string]string, cols ...string) [][]string {
	out := [][]string{}
	for _, r := range rows {
		var p []string
		for _, c := range cols {
			v, ok := r[c]
			if !ok {
				v = "<missing column " + c + ">"
			}
			p = append(p, v)
		}
		out = append(out, p)
	}
	return out
}

// loadCookbookFixture records a small, realistic operator history relative
// to now through the repository (not raw inserts), so the queries are checked
// against what the store really writes.
func loadCookbookFixture(t *testing.T, repo *Repository) {
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	reason := func(r, msg string) func(*lifecycle.Event) {
		return func(ev *lifecycle.Event) { ev.Reason, ev.Message = r, msg }
	}
	retry := func(ev *lifecycle.Event) {
		ev.Reason, ev.Message, ev.RetryAt = lifecycle.ReasonRetryScheduled, "timeout", ev.At
	}
	withProgress := func(k *tracker, p string) {
		require.NoError(t, repo.UpdateColumns(testCtx(t), k.uid, k.owner, ColumnUpdate{Progress: &p}))
	}
	L := struct{ Pending, Running, Paused, Finished, Failed lifecycle.Status }{
		lifecycle.Pending, lifecycle.Running, lifecycle.Paused, lifecycle.Finished, lifecycle.Failed}

	// report: failed once, restarted, finished after 300 s.
	k := createTask(t, repo, "uid-nightly", "default", "nightly-report", "report")
	k.apply(t, repo, L.Running, 1, ago(30*time.Minute), reason("Started", ""))
	k.apply(t, repo, L.Failed, 1, ago(20*time.Minute), reason("Error", "disk full"))
	k.apply(t, repo, L.Pending, 2, ago(15*time.Minute), reason("Restarted", ""))
	k.apply(t, repo, L.Running, 2, ago(10*time.Minute), reason("Started", ""))
	w := k.write(t, L.Finished, 2, ago(5*time.Minute), reason("Completed", ""))
	w.Result = json.RawMessage(`{"rows":1}`)
	require.NoError(t, repo.RecordTransition(testCtx(t), w))

	// report: finished after 100 s, two hours ago.
	k = createTask(t, repo, "uid-weekly", "default", "weekly-report", "report")
	k.apply(t, repo, L.Running, 1, ago(2*time.Hour), reason("Started", ""))
	k.apply(t, repo, L.Finished, 1, ago(2*time.Hour-100*time.Second), reason("Completed", ""))

	// email: two running.
	k = createTask(t, repo, "uid-send-a", "default", "send-a", "email")
	k.apply(t, repo, L.Running, 1, ago(15*time.Minute), reason("Started", ""))
	withProgress(k, "3/10")
	k = createTask(t, repo, "uid-send-b", "default", "send-b", "email")
	k.apply(t, repo, L.Running, 1, ago(5*time.Minute), reason("Started", ""))
	withProgress(k, "7/10")
	// send-b has ten items (spec.items.count): items 0-6 succeeded (item 4 in 90 s, item 2 in
	// 30 s, the others at once), 7 and 8 failed, 9 is still running.
	_, err := repo.BeginItems(testCtx(t), "uid-send-b", owner1, 1, ItemPlan{Count: 10})
	require.NoError(t, err)
	_, err = repo.ClaimItems(testCtx(t), "uid-send-b", owner1, 1, 10)
	require.NoError(t, err)
	var outcomes []ItemOutcome
	for i := range 9 {
		o := ItemOutcome{Index: i, Execution: 1, Outcome: OutcomeSucceeded}
		if i >= 7 {
			o.Outcome, o.Error = OutcomeFailed, "mailbox full"
		}
		outcomes = append(outcomes, o)
	}
	outcomes[8].Error = "550 no such user"
	_, err = repo.FinishItems(testCtx(t), "uid-send-b", owner1, 1, 0, outcomes)
	require.NoError(t, err)
	// How long they took (the claim and the outcome above were a moment apart).
	require.NoError(t, repo.db.Exec(`UPDATE background_task_items SET started_at = finished_at - CASE idx
		WHEN 4 THEN interval '90 seconds' WHEN 2 THEN interval '30 seconds' ELSE interval '0' END
		WHERE task_uid = 'uid-send-b' AND state = 'succeeded'`).Error)

	// backup: retried twice, now running its third attempt.
	k = createTask(t, repo, "uid-db-backup", "ops", "db-backup", "backup")
	k.apply(t, repo, L.Running, 1, ago(3*time.Hour), reason("Started", ""))
	k.apply(t, repo, L.Failed, 1, ago(171*time.Minute), reason("Error", "timeout"))
	k.apply(t, repo, L.Pending, 2, ago(170*time.Minute), retry)
	k.apply(t, repo, L.Running, 2, ago(50*time.Minute), reason("Started", ""))
	k.apply(t, repo, L.Failed, 2, ago(46*time.Minute), reason("Error", "timeout"))
	k.apply(t, repo, L.Pending, 3, ago(45*time.Minute), retry)
	k.apply(t, repo, L.Running, 3, ago(30*time.Minute), reason("Started", ""))
	withProgress(k, "50%")
	k.apply(t, repo, L.Running, 3, ago(20*time.Minute), reason(lifecycle.ReasonStalled, "no pause point, progress, checkpoint or heartbeat for 5m0s"))

	// backup: failed for good 40 minutes ago.
	k = createTask(t, repo, "uid-failing-backup", "ops", "failing-backup", "backup")
	w = k.write(t, L.Running, 1, ago(41*time.Minute), reason("Started", ""))
	w.Span = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" // a traced execution
	require.NoError(t, repo.RecordTransition(testCtx(t), w))
	k.advance(w)
	k.apply(t, repo, L.Failed, 1, ago(40*time.Minute), reason("Error", "timeout"))

	// cleanup: paused two days ago, and paused an hour ago.
	k = createTask(t, repo, "uid-paused-old", "default", "paused-old", "cleanup")
	k.apply(t, repo, L.Running, 1, ago(72*time.Hour), reason("Started", ""))
	k.apply(t, repo, L.Paused, 1, ago(48*time.Hour), reason("Paused", ""))
	k = createTask(t, repo, "uid-paused-new", "default", "paused-new", "cleanup")
	k.apply(t, repo, L.Running, 1, ago(2*time.Hour), reason("Started", ""))
	k.apply(t, repo, L.Paused, 1, ago(time.Hour), reason("Paused", ""))
	// ...and another operator process owns it now.
	_, err = repo.Claim(testCtx(t), "uid-paused-new", owner2, owner1.Epoch)
	require.NoError(t, err)

	// Queue mail: send-a (tenant acme) and send-b (tenant globex) were admitted a minute ago
	// after waiting 30 s and 90 s; paused-old waits in it (asked to resume ten minutes ago).
	require.NoError(t, repo.db.WithContext(testCtx(t)).Exec(`UPDATE background_tasks SET queue = 'mail',
    fair_value = CASE name WHEN 'send-a' THEN 'acme' WHEN 'send-b' THEN 'globex' ELSE '' END,
    queue_state = CASE name WHEN 'paused-old' THEN 'waiting' ELSE 'admitted' END,
    queue_waiting_since = now() - CASE name WHEN 'send-a' THEN interval '90 seconds' WHEN 'send-b' THEN interval '150 seconds'
        ELSE interval '10 minutes' END,
    queue_admitted_at = CASE name WHEN 'paused-old' THEN NULL ELSE now() - interval '60 seconds' END
WHERE name IN ('send-a', 'send-b', 'paused-old')`).Error)

	// report: its result was refused by PostgreSQL three hours ago.
	k = createTask(t, repo, "uid-rejected", "default", "rejected-one", "report")
	k.apply(t, repo, L.Running, 1, ago(181*time.Minute), reason("Started", ""))
	k.apply(t, repo, L.Failed, 1, ago(3*time.Hour), reason(lifecycle.ReasonRecordRejected, "the transition to FINISHED could not be recorded"))

	// email: running but deleted; must not show up in live-task queries.
	k = createTask(t, repo, "uid-deleted", "default", "deleted-one", "email")
	k.apply(t, repo, L.Running, 1, ago(time.Minute), reason("Started", ""))
	require.NoError(t, repo.MarkDeleted(testCtx(t), "uid-deleted"))

	// A task deleted long ago was purged with its history.
	k = createTask(t, repo, "uid-purged", "default", "purged-one", "email")
	k.apply(t, repo, L.Running, 1, ago(40*24*time.Hour), reason("Started", ""))
	k.apply(t, repo, L.Finished, 1, ago(40*24*time.Hour), reason("Completed", ""))
	require.NoError(t, repo.MarkDeleted(testCtx(t), "uid-purged"))
	require.NoError(t, repo.db.Exec(`UPDATE background_tasks SET deleted_at = now() - interval '35 days' WHERE uid = 'uid-purged'`).Error)
	_, err = repo.PurgeHistory(testCtx(t), now.Add(-30*24*time.Hour), 10)
	require.NoError(t, err)

	// Once the tasks were placed (claims need their old owner gone): two operator
	// processes are members, and op-2 has since shut down.
	require.NoError(t, repo.JoinMember(testCtx(t), owner1, "taskpilot", time.Minute))
	require.NoError(t, repo.JoinMember(testCtx(t), owner2, "taskpilot", time.Minute))
	require.NoError(t, repo.ReleaseMember(testCtx(t), owner2.Epoch))

	// A nightly schedule: created, then skipped (Forbid), then missed (the operators were down),
	// and a slot missed the day before (outside the last 24 hours).
	fire := func(slot time.Time, outcome FiringOutcome, child, why string) Firing {
		return Firing{ScheduleUID: "uid-schedule", Namespace: "default", Schedule: "nightly-checksum", Slot: slot,
			Outcome: outcome, TaskName: child, Reason: why, RecordedBy: "op-1"}
	}
	_, _, err = repo.RecordFirings(testCtx(t), []Firing{
		fire(ago(30*time.Hour), FiringMissed, "", "Late: 1h0m0s late, past its starting deadline of 1m0s (catchUp Skip)"),
		fire(ago(5*time.Hour), FiringCreated, "nightly-checksum-1", ""),
		fire(ago(4*time.Hour), FiringSkipped, "", "Forbid: nightly-checksum-1 still active (concurrencyPolicy Forbid)"),
		fire(ago(3*time.Hour), FiringMissed, "", "Late: 3h0m0s late, past its starting deadline of 1m0s (catchUp Skip)"),
	})
	require.NoError(t, err)
}
