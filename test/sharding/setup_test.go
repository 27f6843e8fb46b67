package sharding_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/sharding"
	"github.com/taskpilot/taskpilot/test/harness"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
	"github.com/taskpilot/taskpilot/test/witness"
)

// Leases are short, as in the chaos run, so a killed or frozen replica is replaced within
// seconds; the renew deadline leaves room for a loaded machine.
const (
	leaseDuration = 6 * time.Second
	renewDeadline = 4 * time.Second
	retryPeriod   = time.Second
	waitTimeout   = 3 * time.Minute
)

// The shared world of the package's tests: one control plane, one PostgreSQL server and the
// operator binary with the witness task type (test/witness/operator), built once.
var (
	kube     *kubetest.Env   // the test binary's control plane
	pg       *pgtest.Server  // the test binary's PostgreSQL
	binary   string          // the operator under test
	workDir  string          // kubeconfig and operator logs
	scheme   *runtime.Scheme // for the clients
	kubeconf string          // admin kubeconfig for the operators
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // the test's own clients log nothing worth reading
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test here needs the real control plane; they skip themselves
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if workDir, err = os.MkdirTemp("", "taskpilot-sharding-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binary = filepath.Join(workDir, "taskpilot-witness")
	if err := harness.Build(binary, "./test/witness/operator"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kube, err = kubetest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = kube.Stop() }()
	scheme = kube.Scheme
	kubeconf = filepath.Join(workDir, "kubeconfig")
	if err := kube.WriteKubeconfig(kubeconf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := pgtest.Main(m, &pg)
	if code == 0 {
		_ = os.RemoveAll(workDir)
	} else {
		fmt.Fprintln(os.Stderr, "operator logs kept in", workDir)
	}
	return code
}

// world is one test's namespace (tasks and Leases), databases and replicas.
type world struct {
	t        *testing.T
	ctx      context.Context
	ns       string
	c        client.Client
	db, wdb  *pgxpool.Pool
	env      []string
	replicas map[string]*harness.Operator
}

func newWorld(t *testing.T) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs kube-apiserver, etcd, PostgreSQL and operator processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	cfg := rest.CopyConfig(kube.Config)
	cfg.QPS, cfg.Burst = -1, -1 // the test's own load is not what is measured
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	require.NoError(t, err)
	w := &world{t: t, ctx: ctx, ns: "s-" + rand.String(6), c: c, replicas: map[string]*harness.Operator{}}
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}))
	dbURL, wURL := pg.NewDatabase(t), pg.NewDatabase(t)
	if w.db, err = pgxpool.New(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	if w.wdb, err = pgxpool.New(ctx, wURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.db.Close(); w.wdb.Close() })
	require.NoError(t, witness.CreateTable(ctx, w.wdb))
	w.env = []string{"KUBECONFIG=" + kubeconf, "DATABASE_URL=" + dbURL, witness.URLEnv + "=" + wURL}
	t.Cleanup(func() {
		for _, op := range w.replicas {
			_ = op.Stop(20 * time.Second)
		}
		// The next test's sharder watches every namespace: leave it no tasks.
		_ = c.DeleteAllOf(context.Background(), &v1alpha1.BackgroundTask{}, client.InNamespace(w.ns))
	})
	return w
}

// start starts replica name with sharding on and waits until it is ready.
func (w *world) start(name string) *harness.Operator {
	w.t.Helper()
	return w.startWith(name)
}

// startWith is start with extra environment variables (the last of a name wins), such as a
// KUBECONFIG or DATABASE_URL that reaches its backend through a proxy.
func (w *world) startWith(name string, env ...string) *harness.Operator {
	w.t.Helper()
	op, err := harness.StartOperator(harness.OperatorSpec{
		Binary: binary,
		Args: []string{
			"--sharding", "--leader-elect", "--leader-election-namespace=" + w.ns, "--identity=" + name, "--incarnation=" + name + "-pod",
			"--leader-elect-lease-duration=" + leaseDuration.String(), "--leader-elect-renew-deadline=" + renewDeadline.String(),
			"--leader-elect-retry-period=" + retryPeriod.String(), "--max-concurrent-tasks=300", "--kube-api-qps=200",
			"--kube-api-burst=400", "--sweep-interval=5s",
		},
		Env:     append(slices.Clone(w.env), env...),
		LogPath: filepath.Join(workDir, w.ns+"-"+name+".log"),
	})
	require.NoError(w.t, err)
	w.replicas[name] = op
	require.NoError(w.t, op.WaitReady(w.ctx, time.Minute), "replica %s (log %s)", name, filepath.Join(workDir, w.ns+"-"+name+".log"))
	return op
}

// createTasks creates n witness tasks of steps steps, interval apart, checkpointed every step.
func (w *world) createTasks(n, steps int, interval time.Duration) []string {
	w.t.Helper()
	params := fmt.Sprintf(`{"steps":%d,"interval":%q,"checkpointEvery":1}`, steps, interval)
	var names []string
	for i := range n {
		bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: fmt.Sprintf("w%03d", i)},
			Spec: v1alpha1.BackgroundTaskSpec{TaskName: witness.TaskType, Params: &runtime.RawExtension{Raw: []byte(params)}}}
		require.NoError(w.t, w.c.Create(w.ctx, bt))
		names = append(names, bt.Name)
	}
	return names
}

// placement is where each task is: its label, its row's owner and status.
type placement struct {
	uid, shard, owner, status string
	epoch                     int64
}

// placements reads every task's label (API server) and row (PostgreSQL).
func (w *world) placements() map[string]placement {
	w.t.Helper()
	var list v1alpha1.BackgroundTaskList
	require.NoError(w.t, w.c.List(w.ctx, &list, client.InNamespace(w.ns)))
	out := map[string]placement{}
	for _, bt := range list.Items {
		out[bt.Name] = placement{uid: string(bt.UID), shard: sharding.LabelsOf(bt.Labels).Shard}
	}
	rows, err := w.db.Query(w.ctx, `SELECT name, coalesce(owner, ''), coalesce(owner_epoch, 0), status FROM background_tasks WHERE deleted_at IS NULL`)
	require.NoError(w.t, err)
	defer rows.Close()
	for rows.Next() {
		var name, owner, status string
		var epoch int64
		require.NoError(w.t, rows.Scan(&name, &owner, &epoch, &status))
		p := out[name]
		p.owner, p.epoch, p.status = owner, epoch, status
		out[name] = p
	}
	require.NoError(w.t, rows.Err())
	return out
}

// waitSettled waits until every task runs (row RUNNING) on the replica its label names, that
// replica is one of replicas, and each of them has some; it returns the tasks per replica.
func (w *world) waitSettled(names []string, replicas ...string) (map[string]int, map[string]placement) {
	w.t.Helper()
	var per map[string]int
	var at map[string]placement
	deadline := time.Now().Add(waitTimeout)
	for {
		at = w.placements()
		per = map[string]int{}
		ok := true
		for _, n := range names {
			p := at[n]
			if p.shard == "" || p.owner != p.shard || p.status != "RUNNING" {
				ok = false
				break
			}
			per[p.shard]++
		}
		if ok && len(per) == len(replicas) {
			for _, r := range replicas {
				ok = ok && per[r] > 0
			}
		}
		if ok && len(per) == len(replicas) && w.runningWhereAssigned(names, at) {
			return per, at
		}
		require.True(w.t, time.Now().Before(deadline), "tasks never settled on %v: %v", replicas, per)
		time.Sleep(200 * time.Millisecond)
	}
}

// runningWhereAssigned reports whether each task's latest execution, by the witness, runs on
// the replica its label names: the row saying RUNNING with the right owner is not enough, a
// claimed task's run starts a moment after the claim commits (and its witness row after that).
func (w *world) runningWhereAssigned(names []string, at map[string]placement) bool {
	execs := w.executions()
	for _, n := range names {
		p := at[n]
		r, ok := w.replicas[p.shard]
		es := execs[p.uid]
		if !ok || len(es) == 0 {
			return false
		}
		if last := es[len(es)-1]; last.PID != r.PID() || last.Ended {
			return false
		}
	}
	return true
}

// executions reads the witness: every execution of every task, by uid.
func (w *world) executions() map[string][]witness.Execution {
	w.t.Helper()
	execs, err := witness.Load(w.ctx, w.wdb)
	require.NoError(w.t, err)
	return execs
}

// requireNoDoubleRun fails if two executions of one task overlapped (witness package comment).
func (w *world) requireNoDoubleRun(execs map[string][]witness.Execution) {
	w.t.Helper()
	for uid, es := range execs {
		for i := range es {
			for j := i + 1; j < len(es); j++ {
				a, b := es[i], es[j]
				require.False(w.t, b.Start.Before(a.BusyUntil()),
					"task %s ran twice at once: pid %d busy until %s, pid %d started at %s", uid, a.PID, a.BusyUntil(), b.PID, b.Start)
			}
		}
	}
}

// requireContiguousHistories checks every task's transitions have seq 1..last_seq.
func (w *world) requireContiguousHistories() {
	w.t.Helper()
	var broken int
	require.NoError(w.t, w.db.QueryRow(w.ctx, `SELECT count(*) FROM background_tasks t
WHERE (SELECT count(*) FROM background_task_transitions h WHERE h.task_uid = t.uid) <> t.last_seq
   OR (SELECT max(seq) FROM background_task_transitions h WHERE h.task_uid = t.uid) <> t.last_seq`).Scan(&broken))
	require.Zero(w.t, broken, "tasks whose history is not seq 1..last_seq")
}

// freeze stops a replica's process (SIGSTOP) and thaws it later (SIGCONT).
func freeze(t *testing.T, op *harness.Operator) {
	t.Helper()
	require.NoError(t, op.Signal(syscall.SIGSTOP))
}

func thaw(t *testing.T, op *harness.Operator) {
	t.Helper()
	require.NoError(t, op.Signal(syscall.SIGCONT))
}

// lastSeqs maps every task's uid to its row's last_seq.
func (w *world) lastSeqs() map[string]int64 {
	w.t.Helper()
	rows, err := w.db.Query(w.ctx, `SELECT uid, last_seq FROM background_tasks`)
	require.NoError(w.t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var uid string
		var seq int64
		require.NoError(w.t, rows.Scan(&uid, &seq))
		out[uid] = seq
	}
	require.NoError(w.t, rows.Err())
	return out
}

// epochsAfter lists, per task, the owner epoch of each transition recorded after seq from[uid],
// in seq order.
func (w *world) epochsAfter(from map[string]int64) map[string][]int64 {
	w.t.Helper()
	rows, err := w.db.Query(w.ctx, `SELECT task_uid, seq, owner_epoch FROM background_task_transitions ORDER BY task_uid, seq`)
	require.NoError(w.t, err)
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var uid string
		var seq, epoch int64
		require.NoError(w.t, rows.Scan(&uid, &seq, &epoch))
		if seq > from[uid] {
			out[uid] = append(out[uid], epoch)
		}
	}
	require.NoError(w.t, rows.Err())
	return out
}

// checkpoints maps every live task's name to the steps its last checkpoint in the row says
// are done (0 without one).
func (w *world) checkpoints() map[string]int {
	w.t.Helper()
	rows, err := w.db.Query(w.ctx, `SELECT name, coalesce((checkpoint->>'done')::int, 0) FROM background_tasks WHERE deleted_at IS NULL`)
	require.NoError(w.t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var done int
		require.NoError(w.t, rows.Scan(&name, &done))
		out[name] = done
	}
	require.NoError(w.t, rows.Err())
	return out
}

// waitAdvanced waits until every task of names has checkpointed at least k steps more than
// from says (nil: than none): the condition for "the tasks have run a little" that the tests
// wait on instead of a sleep.
func (w *world) waitAdvanced(names []string, from map[string]int, k int) {
	w.t.Helper()
	require.Eventually(w.t, func() bool {
		now := w.checkpoints()
		for _, n := range names {
			if now[n] < from[n]+k {
				return false
			}
		}
		return true
	}, waitTimeout, 100*time.Millisecond, "every task checkpoints %d more steps", k)
}

// waitMetric waits until a line of op's metrics is exactly line (name{labels} value).
func (w *world) waitMetric(op *harness.Operator, line string) {
	w.t.Helper()
	require.Eventually(w.t, func() bool {
		resp, err := http.Get(op.MetricsURL) //nolint:noctx // a poll on loopback, bounded by Eventually
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return slices.Contains(strings.Split(string(body), "\n"), line)
	}, waitTimeout, 100*time.Millisecond, "metrics of pid %d show %s", op.PID(), line)
}

// waitRing waits until the elected sharder spreads tasks over n replicas (its
// taskpilot_sharder_replicas gauge): tasks created from then on are assigned to one of them
// directly, not first to the replicas it saw before.
func (w *world) waitRing(n int) {
	w.t.Helper()
	want := fmt.Sprintf("taskpilot_sharder_replicas %d\n", n)
	require.Eventually(w.t, func() bool {
		for _, op := range w.replicas {
			resp, err := http.Get(op.MetricsURL) //nolint:noctx // a poll on loopback, bounded by Eventually
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if strings.Contains(string(body), want) {
				return true
			}
		}
		return false
	}, waitTimeout, 100*time.Millisecond, "the sharder sees %d replicas", n)
}
