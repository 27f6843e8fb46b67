// Package upgrade_test upgrades a running taskpilot the way a release does, with real
// processes on a real kube-apiserver and PostgreSQL: the previous release's operator (built
// from its commit) runs tasks on its schema; the new release's `taskpilot migrate` migrates as
// the schema's owner (the chart's pre-upgrade Job) while they run; then its replicas replace
// the old ones one at a time (a rolling update). No running task is restarted: its attempt is
// unchanged, its history contiguous, and it resumes from its checkpoint only when it moved to
// another process. Then one replica is rolled back to the previous release on the new schema.
package upgrade_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/harness"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// previousRelease is the release upgraded from. Until the first tag it is a fixed commit: the
// last one before migration 00008, so that the upgrade migrates (00008 and 00009 today).
const previousRelease = "22fd88267933777a249b930fc86d438354c0f49e"

var (
	kube *kubetest.Env
	pg   *pgtest.Server
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(kubetest.Main(m, &kube, func() int { return pgtest.Main(m, &pg) }))
}

// buildAt builds the operator of commit into dir (a git worktree of this repository, removed
// at the end of the test).
func buildAt(t *testing.T, commit, dir string) string {
	t.Helper()
	root := kubetest.RepoRoot()
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").CombinedOutput(); err != nil {
		t.Fatalf("the previous release %s is not in this clone's history (a shallow clone?): %v %s", commit, err, out)
	}
	src := filepath.Join(dir, "src")
	out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", src, commit).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("git", "-C", root, "worktree", "remove", "--force", src).Run() })
	return build(t, src, filepath.Join(dir, "taskpilot-previous"))
}

func build(t *testing.T, src, out string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build %s: %s", src, b)
	return out
}

// TestAnUpgradeRestartsNoRunningTask is the upgrade of a release with two replicas and running
// tasks; see the package documentation.
func TestAnUpgradeRestartsNoRunningTask(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two releases and runs them as processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	work := t.TempDir()
	previous := buildAt(t, previousRelease, work)
	current := build(t, kubetest.RepoRoot(), filepath.Join(work, "taskpilot"))

	ns := "up-" + rand.String(6)
	c, err := client.New(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	kubeconfig := filepath.Join(work, "kubeconfig")
	require.NoError(t, kube.WriteKubeconfig(kubeconfig))

	// The database as the previous release left it: migrated by its `taskpilot migrate` as the
	// owner, the operators running as the runtime role.
	ownerURL := pg.NewDatabase(t)
	migrate(t, previous, ownerURL, kubeconfig)
	runtimeURL := loginRole(ctx, t, ownerURL, store.RuntimeRole)
	db, err := pgxpool.New(ctx, ownerURL)
	require.NoError(t, err)
	defer db.Close()
	before := schemaVersion(ctx, t, db)

	env := []string{"KUBECONFIG=" + kubeconfig, "DATABASE_URL=" + runtimeURL}
	start := func(binary, name string) *harness.Operator {
		t.Helper()
		op, err := harness.StartOperator(harness.OperatorSpec{
			Binary: binary,
			Args: []string{"--leader-elect", "--leader-election-namespace=" + ns, "--identity=" + name,
				"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s",
				"--sweep-interval=5s", "--max-concurrent-tasks=100"},
			Env:     env,
			LogPath: filepath.Join(work, name+".log"),
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = op.Stop(20 * time.Second) })
		require.NoError(t, op.WaitReady(ctx, 2*time.Minute), "%s did not become ready: %s", name, tail(filepath.Join(work, name+".log")))
		return op
	}
	oldA, oldB := start(previous, "old-a"), start(previous, "old-b")

	// Tasks that run through the whole upgrade: a step every 100 ms, a checkpoint every step.
	const tasks = 20
	for i := range tasks {
		require.NoError(t, c.Create(ctx, &v1alpha1.BackgroundTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("t%02d", i)},
			Spec: v1alpha1.BackgroundTaskSpec{TaskName: "countdown",
				Params: &runtime.RawExtension{Raw: []byte(`{"from":100000,"interval":"100ms","checkpointEvery":1}`)}},
		}))
	}
	waitRunning(ctx, t, db, tasks, "the previous release runs every task")

	// The pre-upgrade Job: the new release migrates as the owner while the old one runs.
	migrate(t, current, ownerURL, kubeconfig)
	after := schemaVersion(ctx, t, db)
	require.Greater(t, after, before, "the upgrade migrates the schema")
	waitRunning(ctx, t, db, tasks, "the previous release runs every task on the new schema")

	// The rolling update: a new replica starts, then an old one stops, twice.
	start(current, "new-a")
	require.NoError(t, oldA.Stop(30*time.Second))
	waitRunning(ctx, t, db, tasks, "every task runs after old-a stopped")
	start(current, "new-b")
	require.NoError(t, oldB.Stop(30*time.Second))
	waitRunning(ctx, t, db, tasks, "every task runs after old-b stopped")
	waitOwnedBy(ctx, t, db, tasks, "new-a", "new-b")

	// A rollback of one replica: the previous release starts on the new schema and joins.
	start(previous, "rolled-back")

	report := checkHistories(ctx, t, db)
	t.Logf("upgrade %s -> this tree, schema %d -> %d: %d tasks running across it, attempts changed: %d, "+
		"resumes after a move: %d, resumes without a move: %d", previousRelease[:7], before, after, tasks,
		report.attemptsChanged, report.movedResumes, report.unmovedResumes)
	require.Zero(t, report.attemptsChanged, "no task was restarted")
	require.Zero(t, report.unmovedResumes, "no task resumed from its checkpoint in the process that ran it")
}

// migrate runs `taskpilot migrate` of binary as the owner of the database.
func migrate(t *testing.T, binary, ownerURL, kubeconfig string) {
	t.Helper()
	cmd := exec.Command(binary, "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+ownerURL, "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s migrate: %s", binary, out)
}

// loginRole creates a login role member of group and returns ownerURL as that role.
func loginRole(ctx context.Context, t *testing.T, ownerURL, group string) string {
	t.Helper()
	admin, err := pgx.Connect(ctx, ownerURL)
	require.NoError(t, err)
	defer func() { _ = admin.Close(ctx) }()
	name := "up_" + strings.ToLower(rand.String(8))
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'secret' IN ROLE %s`, name, group))
	require.NoError(t, err)
	cfg, err := pgx.ParseConfig(ownerURL)
	require.NoError(t, err)
	return fmt.Sprintf("postgres://%s:secret@%s:%d/%s?sslmode=disable", name, cfg.Host, cfg.Port, cfg.Database)
}

func schemaVersion(ctx context.Context, t *testing.T, db *pgxpool.Pool) int64 {
	t.Helper()
	var v int64
	require.NoError(t, db.QueryRow(ctx, `SELECT max(version_id) FROM `+store.SchemaVersionTable+` WHERE is_applied`).Scan(&v))
	return v
}

// waitRunning waits until n rows are RUNNING and owned by a live process.
func waitRunning(ctx context.Context, t *testing.T, db *pgxpool.Pool, n int, what string) {
	t.Helper()
	var running int
	require.Eventually(t, func() bool {
		err := db.QueryRow(ctx, `SELECT count(*) FROM background_tasks b JOIN taskpilot_members m ON m.epoch = b.owner_epoch
			WHERE b.status = 'RUNNING' AND b.deleted_at IS NULL AND m.released_at IS NULL AND m.expires_at > now()`).Scan(&running)
		return err == nil && running == n
	}, 3*time.Minute, 200*time.Millisecond, "%s: %d of %d running", what, running, n)
}

// waitOwnedBy waits until the n tasks are owned by the named processes only.
func waitOwnedBy(ctx context.Context, t *testing.T, db *pgxpool.Pool, n int, owners ...string) {
	t.Helper()
	var owned int
	require.Eventually(t, func() bool {
		err := db.QueryRow(ctx, `SELECT count(*) FROM background_tasks WHERE owner = ANY($1) AND status = 'RUNNING'`, owners).Scan(&owned)
		return err == nil && owned == n
	}, 3*time.Minute, 200*time.Millisecond, "%d of %d tasks owned by %v", owned, n, owners)
}

type historyReport struct {
	attemptsChanged, movedResumes, unmovedResumes int
}

// checkHistories reads every task's history: contiguous from 1, one attempt, and each
// RUNNING -> RUNNING (a resume from the checkpoint) written by another process than the one
// before it.
func checkHistories(ctx context.Context, t *testing.T, db *pgxpool.Pool) historyReport {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT task_uid, seq, coalesce(from_status, ''), to_status, attempt, coalesce(owner_epoch, 0)
		FROM background_task_transitions ORDER BY task_uid, seq`)
	require.NoError(t, err)
	defer rows.Close()
	var r historyReport
	var uid string
	var lastSeq, lastEpoch int64
	for rows.Next() {
		var u, from, to string
		var seq, epoch int64
		var attempt int
		require.NoError(t, rows.Scan(&u, &seq, &from, &to, &attempt, &epoch))
		if u != uid {
			uid, lastSeq = u, 0
		}
		require.Equal(t, lastSeq+1, seq, "task %s: history is contiguous", u)
		if attempt > 1 {
			r.attemptsChanged++
		}
		if from == "RUNNING" && to == "RUNNING" {
			if epoch != lastEpoch {
				r.movedResumes++
			} else {
				r.unmovedResumes++
			}
		}
		require.NotContains(t, []string{"FAILED", "STOPPED", "FINISHED"}, to, "task %s seq %d", u, seq)
		lastSeq, lastEpoch = seq, epoch
	}
	require.NoError(t, rows.Err())
	return r
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
