package store

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// requirePgError asserts err is a PostgreSQL error with this SQLSTATE and,
// when constraint is not empty, from this constraint.
func requirePgError(t *testing.T, err error, code, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want PostgreSQL error %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	if constraint != "" {
		require.Equal(t, constraint, pgErr.ConstraintName, pgErr.Message)
	}
	require.False(t, IsTransient(err), "constraint violations are not transient")
}

func TestCheckConstraints(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	const insertTask = `INSERT INTO background_tasks (uid, task_name, status, desired_state, attempt, progress, message, result, checkpoint, checkpoint_attempt, end_time) `
	require.NoError(t, repo.db.WithContext(ctx).Exec(
		insertTask+`VALUES ('ok', 'demo', 'PENDING', 'RUNNING', 0, '', '', NULL, NULL, NULL, NULL)`).Error)
	require.NoError(t, repo.db.WithContext(ctx).Exec(`INSERT INTO background_task_transitions
		(task_uid, seq, from_status, to_status, attempt, reason, at) VALUES ('ok', 1, NULL, 'PENDING', 0, 'Created', now())`).Error)

	const insertTransition = `INSERT INTO background_task_transitions (task_uid, seq, from_status, to_status, attempt, reason, at) `
	cases := []struct {
		name, sql, code, constraint string
	}{
		{"bad status", insertTask + `VALUES ('a', 'demo', 'DONE', 'RUNNING', 0, '', '', NULL, NULL, NULL, NULL)`, "23514", "background_tasks_status_check"},
		{"bad desired state", insertTask + `VALUES ('a', 'demo', 'PENDING', 'FINISHED', 0, '', '', NULL, NULL, NULL, NULL)`, "23514", "background_tasks_desired_state_check"},
		{"negative attempt", insertTask + `VALUES ('a', 'demo', 'PENDING', 'RUNNING', -1, '', '', NULL, NULL, NULL, NULL)`, "23514", "background_tasks_attempt_check"},
		{"empty uid", insertTask + `VALUES ('', 'demo', 'PENDING', 'RUNNING', 0, '', '', NULL, NULL, NULL, NULL)`, "23514", "background_tasks_uid_not_empty"},
		{"duplicate uid", insertTask + `VALUES ('ok', 'demo', 'PENDING', 'RUNNING', 0, '', '', NULL, NULL, NULL, NULL)`, "23505", "background_tasks_uid_key"},
		{"end_time while running", insertTask + `VALUES ('a', 'demo', 'RUNNING', 'RUNNING', 1, '', '', NULL, NULL, NULL, now())`, "23514", "background_tasks_end_time_check"},
		{"terminal without end_time", insertTask + `VALUES ('a', 'demo', 'FINISHED', 'RUNNING', 1, '', '', NULL, NULL, NULL, NULL)`, "23514", "background_tasks_end_time_check"},
		{"progress too long", insertTask + `VALUES ('a', 'demo', 'PENDING', 'RUNNING', 0, repeat('x', 65), '', NULL, NULL, NULL, NULL)`, "23514", "background_tasks_progress_size"},
		{"message too long", insertTask + `VALUES ('a', 'demo', 'PENDING', 'RUNNING', 0, '', repeat('x', 4097), NULL, NULL, NULL, NULL)`, "23514", "background_tasks_message_size"},
		{"result too large", insertTask + `VALUES ('a', 'demo', 'FINISHED', 'RUNNING', 1, '', '', jsonb_build_object('k', repeat('x', 65536)), NULL, NULL, now())`, "23514", "background_tasks_result_size"},
		{"checkpoint too large", insertTask + `VALUES ('a', 'demo', 'RUNNING', 'RUNNING', 1, '', '', NULL, jsonb_build_object('k', repeat('x', 65536)), 1, NULL)`, "23514", "background_tasks_checkpoint_size"},
		{"checkpoint without attempt", insertTask + `VALUES ('a', 'demo', 'RUNNING', 'RUNNING', 1, '', '', NULL, '{}', NULL, NULL)`, "23514", "background_tasks_checkpoint_attempt_check"},
		{"result of an unfinished run", insertTask + `VALUES ('a', 'demo', 'RUNNING', 'RUNNING', 1, '', '', '{}', NULL, NULL, NULL)`, "23514", "background_tasks_result_check"},
		{"owner without epoch", `INSERT INTO background_tasks (uid, task_name, status, owner) VALUES ('a', 'demo', 'PENDING', 'op')`, "23514", "background_tasks_owner_check"},
		{"retry_at while running", `INSERT INTO background_tasks (uid, task_name, status, retry_at) VALUES ('a', 'demo', 'RUNNING', now())`, "23514", "background_tasks_retry_at_check"},
		{"negative retries", `INSERT INTO background_tasks (uid, task_name, status, retries) VALUES ('a', 'demo', 'PENDING', -1)`, "23514", "background_tasks_retries_check"},
		{"negative restart generation", `INSERT INTO background_tasks (uid, task_name, status, observed_restart_generation) VALUES ('a', 'demo', 'PENDING', -1)`, "23514", "background_tasks_observed_restart_generation_check"},
		{"seq 0", insertTransition + `VALUES ('ok', 0, 'PENDING', 'RUNNING', 1, 'r', now())`, "23514", "background_task_transitions_seq_check"},
		{"bad from_status", insertTransition + `VALUES ('ok', 2, 'NOPE', 'RUNNING', 1, 'r', now())`, "23514", "background_task_transitions_from_status_check"},
		{"bad to_status", insertTransition + `VALUES ('ok', 2, 'PENDING', 'NOPE', 1, 'r', now())`, "23514", "background_task_transitions_to_status_check"},
		{"from_status NULL after seq 1", insertTransition + `VALUES ('ok', 2, NULL, 'RUNNING', 1, 'r', now())`, "23514", "background_task_transitions_first_check"},
		{"unknown task", insertTransition + `VALUES ('missing', 2, 'PENDING', 'RUNNING', 1, 'r', now())`, "23503", "background_task_transitions_task_uid_fkey"},
		{"duplicate seq", insertTransition + `VALUES ('ok', 1, NULL, 'PENDING', 0, 'r', now())`, "23505", "background_task_transitions_task_uid_seq_key"},
		{"negative transition attempt", insertTransition + `VALUES ('ok', 2, 'PENDING', 'RUNNING', -1, 'r', now())`, "23514", "background_task_transitions_attempt_check"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePgError(t, repo.db.WithContext(ctx).Exec(tc.sql).Error, tc.code, tc.constraint)
		})
	}

	t.Run("seq 1 must be a creation record", func(t *testing.T) {
		require.NoError(t, repo.db.WithContext(ctx).Exec(
			insertTask+`VALUES ('b', 'demo', 'PENDING', 'RUNNING', 0, '', '', NULL, NULL, NULL, NULL)`).Error)
		requirePgError(t, repo.db.WithContext(ctx).Exec(
			insertTransition+`VALUES ('b', 1, 'PENDING', 'RUNNING', 1, 'r', now())`).Error, "23514", "background_task_transitions_first_check")
		requirePgError(t, repo.db.WithContext(ctx).Exec(
			insertTransition+`VALUES ('b', 1, NULL, 'RUNNING', 1, 'r', now())`).Error, "23514", "background_task_transitions_first_check")
	})
}

func TestHistoryIsAppendOnly(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	createTask(t, repo, "u1", "ns", "n", "demo")
	createTask(t, repo, "u2", "ns", "n2", "demo")

	requirePgError(t, repo.db.WithContext(ctx).Exec(
		`UPDATE background_task_transitions SET reason = 'x' WHERE task_uid = 'u1'`).Error, "23001", "")
	requirePgError(t, repo.db.WithContext(ctx).Exec(
		`DELETE FROM background_task_transitions WHERE task_uid = 'u1'`).Error, "23001", "")
	requirePgError(t, repo.db.WithContext(ctx).Exec(`TRUNCATE background_task_transitions`).Error, "23001", "")
	requirePgError(t, repo.db.WithContext(ctx).Exec(`DELETE FROM background_tasks WHERE uid = 'u1'`).Error,
		"23503", "background_task_transitions_task_uid_fkey")

	// A purge opts in for its own transaction only, and may delete only the history of a
	// soft-deleted task, never update it.
	purge := func(sql string) error {
		return repo.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`SET LOCAL taskpilot.allow_history_purge = 'on'`).Error; err != nil {
				return err
			}
			return tx.Exec(sql).Error
		})
	}
	requirePgError(t, purge(`DELETE FROM background_task_transitions WHERE task_uid = 'u1'`), "23001", "")
	require.NoError(t, repo.MarkDeleted(ctx, "u1"))
	requirePgError(t, purge(`UPDATE background_task_transitions SET reason = 'x' WHERE task_uid = 'u1'`), "23001", "")
	require.NoError(t, purge(`DELETE FROM background_task_transitions WHERE task_uid = 'u1'`))
	_, err := repo.History(ctx, "u1")
	require.ErrorIs(t, err, ErrNotFound)
	// SET LOCAL ended with that transaction.
	require.NoError(t, repo.MarkDeleted(ctx, "u2"))
	requirePgError(t, repo.db.WithContext(ctx).Exec(
		`DELETE FROM background_task_transitions WHERE task_uid = 'u2'`).Error, "23001", "")
}

// TestStatusChecksListTheLifecycle: the CHECK constraints on the status columns allow exactly
// the statuses of package lifecycle (and the desired-state check exactly its desired states),
// so the SQL contract and the Go vocabulary cannot drift apart.
func TestStatusChecksListTheLifecycle(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	var want []string
	for _, s := range lifecycle.All() {
		want = append(want, string(s))
	}
	slices.Sort(want)
	for _, constraint := range []string{"background_tasks_status_check", "background_task_transitions_from_status_check",
		"background_task_transitions_to_status_check"} {
		require.Equal(t, want, checkValues(ctx, t, repo, constraint), constraint)
	}
	desired := []string{string(lifecycle.DesiredRunning), string(lifecycle.DesiredPaused), string(lifecycle.DesiredStopped)}
	slices.Sort(desired)
	require.Equal(t, desired, checkValues(ctx, t, repo, "background_tasks_desired_state_check"))
	for _, d := range desired {
		require.True(t, lifecycle.Desired(d).Valid(), d)
	}
}

// checkValues reads the quoted values a CHECK (col IN (...)) constraint allows.
func checkValues(ctx context.Context, t *testing.T, repo *Repository, constraint string) []string {
	t.Helper()
	var def string
	require.NoError(t, repo.db.WithContext(ctx).Raw(`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = ?`, constraint).Scan(&def).Error)
	require.NotEmpty(t, def, constraint)
	var out []string
	for _, m := range regexp.MustCompile(`'([A-Z]+)'`).FindAllStringSubmatch(def, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}
