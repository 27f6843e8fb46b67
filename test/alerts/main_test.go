// Package alerts_test proves taskpilot's alerts (hack/monitoring) against real failures: it runs
// the operator binary against a real kube-apiserver and PostgreSQL, breaks something (stops
// PostgreSQL, cuts a replica off both backends, overloads a replica with stalling tasks and a
// schedule it cannot keep, starts a second operator next to the first, gives one a role without
// privileges), scrapes the operators' /metrics throughout, and evaluates every alert over those
// samples with Prometheus's own rule evaluation. Each alert must fire in its scenario, only the
// expected ones may fire there, and none may fire in a healthy run. It also checks that every
// metric the alerts and the dashboard read is one an operator exports.
package alerts_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/hack/monitoring"
	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/harness"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

var (
	kube    *kubetest.Env
	pg      *pgtest.Server
	binary  string // the taskpilot operator, built from this checkout
	workDir string // kubeconfigs and operator logs
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(kubetest.Main(m, &kube, func() int {
		var err error
		if workDir, err = os.MkdirTemp("", "taskpilot-alerts-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binary = filepath.Join(workDir, "taskpilot")
		if err := harness.Build(binary, "."); err != nil {
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
	}))
}

// Short leases, as in the chaos run, so that losing a backend shows within seconds.
var leaseArgs = []string{"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s"}

// scenario is one namespace, one database and the operators of one scenario, scraped by rec.
type scenario struct {
	t        *testing.T
	ctx      context.Context
	ns       string
	c        client.Client
	dbURL    string
	kubeconf string
	ops      map[string]*harness.Operator
	rec      *recorder
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cfg := rest.CopyConfig(kube.Config)
	cfg.QPS, cfg.Burst = -1, -1
	scheme := runtime.NewScheme()
	require.NoError(t, corev1.AddToScheme(scheme))
	require.NoError(t, v1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	require.NoError(t, err)
	s := &scenario{t: t, ctx: ctx, ns: "a-" + strings.ToLower(rand.String(6)), c: c, dbURL: pg.NewDatabase(t),
		kubeconf: filepath.Join(workDir, "kubeconfig"), ops: map[string]*harness.Operator{}}
	if _, err := os.Stat(s.kubeconf); err != nil {
		require.NoError(t, kube.WriteKubeconfig(s.kubeconf))
	}
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}))
	s.rec = newRecorder(s.ns)
	t.Cleanup(func() {
		for _, op := range s.ops {
			_ = op.Stop(20 * time.Second)
		}
		_ = c.DeleteAllOf(context.Background(), &v1alpha1.TaskSchedule{}, client.InNamespace(s.ns))
		_ = c.DeleteAllOf(context.Background(), &v1alpha1.BackgroundTask{}, client.InNamespace(s.ns))
	})
	return s
}

// start starts operator name (and scrapes it); ready waits for /readyz.
func (s *scenario) start(name string, ready bool, args []string, env ...string) *harness.Operator {
	s.t.Helper()
	all := append([]string{"--leader-election-namespace=" + s.ns, "--identity=" + name, "--incarnation=" + name + "-pod",
		"--sweep-interval=5s"}, leaseArgs...)
	log := filepath.Join(workDir, s.ns+"-"+name+".log")
	op, err := harness.StartOperator(harness.OperatorSpec{Binary: binary, Args: append(all, args...),
		Env: append([]string{"KUBECONFIG=" + s.kubeconf, "DATABASE_URL=" + s.dbURL}, env...), LogPath: log})
	require.NoError(s.t, err)
	s.ops[name] = op
	if ready {
		require.NoError(s.t, op.WaitReady(s.ctx, time.Minute), "operator %s (log %s)", name, log)
	}
	s.rec.watch(name, op)
	return op
}

// stop stops operator name (SIGTERM) and no longer scrapes it.
func (s *scenario) stop(name string) {
	s.t.Helper()
	s.rec.unwatch(name)
	require.NoError(s.t, s.ops[name].Stop(20*time.Second))
	delete(s.ops, name)
}

// task creates a BackgroundTask of a built-in type.
func (s *scenario) task(name, taskType, params string, set func(*v1alpha1.BackgroundTaskSpec)) {
	s.t.Helper()
	bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: v1alpha1.BackgroundTaskSpec{TaskName: taskType, Params: &runtime.RawExtension{Raw: []byte(params)}}}
	if set != nil {
		set(&bt.Spec)
	}
	require.NoError(s.t, s.c.Create(s.ctx, bt))
}

// setState patches spec.state of the named tasks.
func (s *scenario) setState(state v1alpha1.DesiredState, names ...string) {
	s.t.Helper()
	for _, n := range names {
		bt := &v1alpha1.BackgroundTask{}
		require.NoError(s.t, s.c.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: n}, bt))
		patch := client.MergeFrom(bt.DeepCopy())
		bt.Spec.State = state
		require.NoError(s.t, s.c.Patch(s.ctx, bt, patch))
	}
}

// waitPhase waits until every named task is in phase.
func (s *scenario) waitPhase(phase v1alpha1.Phase, names ...string) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		for _, n := range names {
			bt := &v1alpha1.BackgroundTask{}
			if err := s.c.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: n}, bt); err != nil || bt.Status.Phase != phase {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "tasks %v never all %s", names, phase)
}

// hold records for d of real time.
func (s *scenario) hold(d time.Duration) {
	select {
	case <-s.ctx.Done():
		s.t.Fatal(s.ctx.Err())
	case <-time.After(d):
	}
}

// expect evaluates the alerts over what was recorded: exactly want fire (tolerated may also).
func (s *scenario) expect(want []string, tolerated ...string) map[string]firing {
	s.t.Helper()
	end := s.rec.halt()
	fired := s.rec.evaluate(s.t)
	var got []string
	for name, f := range fired {
		got = append(got, name)
		s.t.Logf("%s fired at +%s (virtual) for %s", name, f.at.Sub(s.rec.start), f.labels)
	}
	s.t.Logf("recorded %s of virtual time", end.Sub(s.rec.start))
	if s.t.Failed() || !s.fires(want, got) {
		for _, line := range s.rec.last(alertMetrics()...) {
			s.t.Log(line)
		}
	}
	for _, w := range want {
		require.Contains(s.t, got, w, "%s must fire in this scenario", w)
	}
	for _, g := range got {
		require.True(s.t, slices.Contains(want, g) || slices.Contains(tolerated, g), "%s fired, which this scenario does not explain", g)
	}
	return fired
}

// noPrivilegeURL is the scenario database's URL for a new login role that is not granted
// taskpilot_runtime (only the read-only role).
func (s *scenario) noPrivilegeURL() string {
	s.t.Helper()
	require.NoError(s.t, store.MigrateURL(s.ctx, s.dbURL, logr.Discard()))
	role := "alerts_" + strings.ToLower(rand.String(6))
	admin, err := pgx.Connect(s.ctx, s.dbURL)
	require.NoError(s.t, err)
	defer func() { _ = admin.Close(s.ctx) }()
	_, err = admin.Exec(s.ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'secret' IN ROLE %s`, role, store.ReadOnlyRole))
	require.NoError(s.t, err)
	s.t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), s.dbURL); err == nil {
			_, _ = c.Exec(context.Background(), fmt.Sprintf(`DROP OWNED BY %[1]s; DROP ROLE %[1]s`, role))
			_ = c.Close(context.Background())
		}
	})
	u, err := url.Parse(s.dbURL)
	require.NoError(s.t, err)
	u.User = url.UserPassword(role, "secret")
	return u.String()
}

func rawJSON(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }

// fires reports whether every alert of want is in got.
func (s *scenario) fires(want, got []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// alertMetrics are the metric families the alerts read.
func alertMetrics() []string {
	var out []string
	for _, a := range monitoring.Alerts() {
		names, _ := monitoring.MetricNames(a.Expr)
		out = append(out, names...)
	}
	return out
}

// stealTasks makes another owner, with a fresh epoch, the owner of every row owner holds.
func (s *scenario) stealTasks(owner string) {
	s.t.Helper()
	admin, err := pgx.Connect(s.ctx, s.dbURL)
	require.NoError(s.t, err)
	defer func() { _ = admin.Close(s.ctx) }()
	tag, err := admin.Exec(s.ctx, `UPDATE background_tasks SET owner = 'intruder', owner_epoch = nextval('taskpilot_owner_epoch')
		WHERE owner = $1 AND status IN ('PENDING', 'RUNNING', 'PAUSED')`, owner)
	require.NoError(s.t, err)
	require.Positive(s.t, tag.RowsAffected(), "%s owned no task", owner)
}
