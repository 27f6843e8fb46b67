package store

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// loginAs creates a login role (unique to the test) member of group and returns the URL of
// dbURL for it. Roles are the server's: each test makes its own.
func loginAs(t *testing.T, dbURL, group string) string {
	t.Helper()
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { _ = admin.Close(ctx) }()
	name := fmt.Sprintf("%s_%d", group, time.Now().UnixNano())
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'secret' IN ROLE %s`, name, group))
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dbURL)
		if err == nil {
			_, _ = c.Exec(context.Background(), fmt.Sprintf(`DROP OWNED BY %s; DROP ROLE %s`, name, name))
			_ = c.Close(context.Background())
		}
	})
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword(name, "secret")
	return u.String()
}

// TestTheRuntimeRoleCannotRewriteHistory: the operator runs as a member of taskpilot_runtime,
// which can do what the operator does (create rows, record transitions, claim, release,
// checkpoint, soft-delete, purge old history through taskpilot_purge_history) and no more: it
// cannot drop or disable the append-only trigger, delete or rewrite history, backdate a
// deletion, or purge the history of a task deleted moments ago.
func TestTheRuntimeRoleCannotRewriteHistory(t *testing.T) {
	ownerURL := srv.NewDatabase(t)
	_ = openRepo(t, ownerURL, Config{}) // the owner migrates
	runtimeURL := loginAs(t, ownerURL, RuntimeRole)
	repo := openRepo(t, runtimeURL, Config{MigrateURL: ownerURL})
	ctx := testCtx(t)

	// Everything the operator does works.
	k := createTask(t, repo, "u1", "ns", "t1", "demo")
	k.apply(t, repo, lifecycle.Running, 1, time.Now())
	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", owner1, 1, []byte(`{"n":1}`)))
	_, err := repo.NextEpoch(ctx)
	require.NoError(t, err)
	require.NoError(t, repo.Release(ctx, "u1", owner1))
	_, err = repo.Claim(ctx, "u1", owner2, 0)
	require.NoError(t, err)
	require.NoError(t, repo.MarkDeleted(ctx, "u1"))
	p, err := repo.PurgeHistory(ctx, time.Now().Add(-2*time.Hour), 10)
	require.NoError(t, err)
	require.Zero(t, p.Tasks, "a task deleted moments ago keeps its history")
	// Schedules: the slot's row first, then its child's UID (or missed), and the revision.
	won, _, err := repo.RecordFirings(ctx, []Firing{{ScheduleUID: "s1", Namespace: "ns", Schedule: "s", Slot: time.Now(),
		Outcome: FiringCreated, TaskName: "s-1", RecordedBy: "op"}, {ScheduleUID: "s1", Namespace: "ns", Schedule: "s",
		Slot: time.Now().Add(time.Second), Outcome: FiringCreated, TaskName: "s-2", RecordedBy: "op"}})
	require.NoError(t, err)
	require.NoError(t, repo.SettleChild(ctx, won[0].ID, "child-1"))
	require.NoError(t, repo.SettleRefused(ctx, won[1].ID, "Refused: no"))
	_, err = repo.Revise(ctx, ScheduleRevision{ScheduleUID: "s1", Namespace: "ns", Schedule: "s", Generation: 1, EffectiveFrom: time.Now()})
	require.NoError(t, err)

	c, err := pgx.Connect(ctx, runtimeURL)
	require.NoError(t, err)
	defer func() { _ = c.Close(ctx) }()
	for name, stmt := range map[string]string{
		"drop the trigger":    `DROP TRIGGER background_task_transitions_append_only ON background_task_transitions`,
		"disable the trigger": `ALTER TABLE background_task_transitions DISABLE TRIGGER ALL`,
		"delete history":      `DELETE FROM background_task_transitions`,
		"rewrite history":     `UPDATE background_task_transitions SET reason = 'x'`,
		"truncate history":    `TRUNCATE background_task_transitions`,
		"delete rows":         `DELETE FROM background_tasks`,
		"purge too early":     `SELECT * FROM taskpilot_purge_history(now(), 10)`,
		"backdate a deletion": `UPDATE background_tasks SET deleted_at = now() - interval '40 days' WHERE uid = 'u1'`,
		"rewrite a firing":    `UPDATE background_task_firings SET slot = now(), recorded_by = 'x'`,
		"delete firings":      `DELETE FROM background_task_firings`,
		"opt in and delete":   `BEGIN; SET LOCAL taskpilot.allow_history_purge = 'on'; DELETE FROM background_task_transitions; COMMIT`,
	} {
		_, err := c.Exec(ctx, stmt)
		require.Error(t, err, name)
		_, _ = c.Exec(ctx, `ROLLBACK`)
	}
	var seqs int
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM background_task_transitions WHERE task_uid = 'u1'`).Scan(&seqs))
	require.Equal(t, 2, seqs, "the history is whole")
}

// TestTheReadOnlyRoleOnlyReads: the plugin, the web view and SQL users read as members of
// taskpilot_readonly: every table, nothing written.
func TestTheReadOnlyRoleOnlyReads(t *testing.T) {
	ownerURL := srv.NewDatabase(t)
	owner := openRepo(t, ownerURL, Config{})
	createTask(t, owner, "u1", "ns", "t1", "demo")
	readerURL := loginAs(t, ownerURL, ReadOnlyRole)
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, readerURL)
	require.NoError(t, err)
	defer func() { _ = c.Close(ctx) }()
	var n int
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM background_tasks t JOIN background_task_transitions h ON h.task_uid = t.uid`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM background_task_purges`).Scan(&n))
	for name, stmt := range map[string]string{
		"insert":        `INSERT INTO background_tasks (uid, task_name, status) VALUES ('x', 'demo', 'PENDING')`,
		"update":        `UPDATE background_tasks SET progress = 'x'`,
		"delete":        `DELETE FROM background_tasks`,
		"take an epoch": `SELECT nextval('taskpilot_owner_epoch')`,
		"purge":         `SELECT * FROM taskpilot_purge_history(now() - interval '2 hours', 10)`,
	} {
		_, err := c.Exec(ctx, stmt)
		require.Error(t, err, name)
	}
}
