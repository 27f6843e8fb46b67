package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// The integration suite runs the real operator (manager, runner, journal, store) against a real
// kube-apiserver + etcd and a real PostgreSQL, and asserts through a non-cached client and SQL.
var (
	kube *kubetest.Env
	pg   *pgtest.Server
)

// waitTimeout is generous: the machines are shared and noisy. Tests never assert on elapsed time.
const waitTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
	os.Exit(kubetest.Main(m, &kube, func() int { return pgtest.Main(m, &pg) }))
}

// zapLevel keeps test logs quiet unless TASKPILOT_TEST_LOG=debug.
func zapLevel() int8 {
	if os.Getenv("TASKPILOT_TEST_LOG") == "debug" {
		return -1
	}
	return 2
}

// harness is one test's world: a namespace, a database, an operator and a direct client.
type harness struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	dbURL  string
	c      client.Client // non-cached: assertions see the API server, not a cache
	repo   *store.Repository
	sql    *pgxpool.Pool // the test's own view of the database, for assertions in SQL
	op     *operatorProcess
	probes *probes
	// operators counts the operators started, for unique identities; settles the barriers.
	operators, settles int
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, func() *pgtest.Server { return pg })
}

// newHarnessOn is newHarness with the database on a server of the test's own (outage tests).
func newHarnessOn(t *testing.T, server func() *pgtest.Server) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs kube-apiserver, etcd and PostgreSQL")
	}
	// Each test has a namespace, a database and operators of its own, and most of its time is
	// spent waiting (leases, backoffs, settling): the tests share the control plane in parallel.
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	c, err := client.New(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	ns := "t-" + rand.String(8)
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	h := &harness{t: t, ctx: ctx, ns: ns, c: c, probes: newProbes()}
	h.dbURL = server().NewDatabase(t)
	h.repo, err = store.Open(ctx, store.Config{URL: h.dbURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.repo.Close() })
	h.sql, err = pgxpool.New(ctx, h.dbURL)
	require.NoError(t, err)
	t.Cleanup(h.sql.Close)
	return h
}

// operatorProcess is one running operator (a manager), as a pod would run it.
type operatorProcess struct {
	cancel  context.CancelFunc
	done    chan error
	repo    *store.Repository
	op      *controllers.Operator
	metrics *prometheus.Registry
	elected <-chan struct{}
	cache   cache.Cache // the manager's cache: what the operator keeps of every object
}

type operatorConfig struct {
	maxConcurrent int
	dbURL         string
	leaderElect   bool
	// identity names the operator as a task owner (default: unique per operator).
	identity string
	// journalWriters overrides the number of PostgreSQL writers.
	journalWriters int
	// clock overrides the operator's clock (a skewed clock in fencing tests).
	clock clock.WithTicker
	// failStatusWrites makes every status write fail, as an API server that refuses them would.
	failStatusWrites bool
	// beforeDelete runs before each deletion the operator sends (a user's change racing it).
	beforeDelete func(client.Object)
	// onPatch wraps each patch the operator sends (data is its body): send sends it.
	onPatch func(obj client.Object, data []byte, send func() error) error
	// statements, when set, sees every statement the operator sends to PostgreSQL.
	statements pgx.QueryTracer
	// historyRetention and memoryBudget set the policies of the same names; journalMaxBytes
	// bounds the journal's backlog.
	historyRetention time.Duration
	memoryBudget     int64
	journalMaxBytes  int64
	// sharding makes the operator one of several active replicas (leader election on, for the
	// sharder; its cache holds the tasks assigned to it).
	sharding bool
	// deployment names the operator's deployment (default: the default one); register replaces
	// the task types of the test (built-ins and test types).
	deployment string
	register   func(*runner.Registry) error
}

// startOperator starts an operator watching the harness namespace. It is stopped at cleanup.
func (h *harness) startOperator(cfg operatorConfig) *operatorProcess {
	h.t.Helper()
	if cfg.dbURL == "" {
		cfg.dbURL = h.dbURL
	}
	h.operators++
	if cfg.identity == "" {
		cfg.identity = fmt.Sprintf("op-%d", h.operators)
	}
	repo, err := store.Open(h.ctx, store.Config{URL: cfg.dbURL, QueryTracer: cfg.statements})
	require.NoError(h.t, err)
	// Leases long enough that a loaded machine (tests run in parallel, with -race) does not
	// stall a renewal past the deadline; takeovers in tests come from released Leases.
	lease, renew, retry := 10*time.Second, 7*time.Second, time.Second
	if cfg.sharding {
		cfg.leaderElect = true
	}
	byObject, err := controllers.CacheByObject(controllers.Settings{Namespace: h.ns, Deployment: cfg.deployment,
		Identity: cfg.identity, Sharding: cfg.sharding})
	if err != nil {
		h.t.Fatal(err)
	}
	opts := ctrl.Options{
		Scheme:                 kube.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}, ByObject: byObject},
		Controller:             ctrlConfigSkipNameValidation(),
	}
	if cfg.failStatusWrites {
		opts.NewClient = failingStatusClient
	}
	if cfg.beforeDelete != nil {
		opts.NewClient = hookedDeleteClient(cfg.beforeDelete)
	}
	if cfg.onPatch != nil {
		opts.NewClient = hookedPatchClient(cfg.onPatch)
	}
	mgr, err := ctrl.NewManager(kube.Config, opts)
	require.NoError(h.t, err)
	metrics := prometheus.NewRegistry()
	reg := runner.NewRegistry()
	if cfg.register != nil {
		require.NoError(h.t, cfg.register(reg))
	} else {
		require.NoError(h.t, builtin.Register(reg))
		h.registerTestTypes(reg)
	}
	op, err := controllers.Setup(mgr, controllers.Options{
		Settings: controllers.Settings{
			Identity:           cfg.identity,
			Namespace:          h.ns,
			Deployment:         cfg.deployment,
			LeaseDuration:      lease,
			RenewDeadline:      renew,
			RetryPeriod:        retry,
			MaxConcurrentTasks: cfg.maxConcurrent,
			StopGrace:          2 * time.Second,
			DatabaseTimeout:    2 * time.Second,
			// The production default: a fresh task's first status write waits 100ms.
			StatusCoalesceWindow:   100 * time.Millisecond,
			ProgressUpdateInterval: 500 * time.Millisecond,
			JournalWriters:         cfg.journalWriters,
			JournalMaxBytes:        cfg.journalMaxBytes,
			SweepInterval:          2 * time.Second,
			HistoryRetention:       cfg.historyRetention,
			MemoryBudget:           cfg.memoryBudget,
			LeaderElect:            cfg.leaderElect,
			Sharding:               cfg.sharding,
		},
		Store:      repo,
		Registry:   reg,
		Namespaces: []string{h.ns},
		Metrics:    metrics,
		Clock:      cfg.clock,
	})
	require.NoError(h.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	p := &operatorProcess{cancel: cancel, done: make(chan error, 1), repo: repo, op: op, metrics: metrics, elected: op.Elected(),
		cache: mgr.GetCache()}
	go func() { p.done <- mgr.Start(ctx) }()
	h.op = p
	h.t.Cleanup(p.stop)
	return p
}

// failingStatusClient is the manager's client with every status write refused.
func failingStatusClient(cfg *rest.Config, opts client.Options) (client.Client, error) {
	c, err := client.NewWithWatch(cfg, opts)
	if err != nil {
		return nil, err
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
			return errors.New("injected: status writes are refused")
		},
	}), nil
}

// hookedDeleteClient is the manager's client calling before ahead of every deletion.
func hookedDeleteClient(before func(client.Object)) client.NewClientFunc {
	return func(cfg *rest.Config, opts client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(cfg, opts)
		if err != nil {
			return nil, err
		}
		return interceptor.NewClient(c, interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				before(obj)
				return c.Delete(ctx, obj, opts...)
			},
		}), nil
	}
}

// hookedPatchClient is the manager's client sending every patch through on.
func hookedPatchClient(on func(obj client.Object, data []byte, send func() error) error) client.NewClientFunc {
	return func(cfg *rest.Config, opts client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(cfg, opts)
		if err != nil {
			return nil, err
		}
		return interceptor.NewClient(c, interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				data, err := patch.Data(obj)
				if err != nil {
					return err
				}
				return on(obj, data, func() error { return c.Patch(ctx, obj, patch, opts...) })
			},
		}), nil
	}
}

// stop shuts the operator down the way SIGTERM does, and waits for it.
func (p *operatorProcess) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	if err := <-p.done; err != nil {
		fmt.Fprintln(os.Stderr, "operator stopped with:", err)
	}
	p.cancel = nil
	_ = p.repo.Close()
}

// create creates a BackgroundTask in the harness namespace.
func (h *harness) create(name, taskName string, params string, mutate ...func(*v1alpha1.BackgroundTask)) *v1alpha1.BackgroundTask {
	h.t.Helper()
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec:       v1alpha1.BackgroundTaskSpec{TaskName: taskName},
	}
	if params != "" {
		bt.Spec.Params = &runtime.RawExtension{Raw: []byte(params)}
	}
	for _, m := range mutate {
		m(bt)
	}
	require.NoError(h.t, h.c.Create(h.ctx, bt))
	return bt
}

func (h *harness) get(name string) *v1alpha1.BackgroundTask {
	h.t.Helper()
	bt := &v1alpha1.BackgroundTask{}
	require.NoError(h.t, h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, bt))
	return bt
}

// patchSpec merge-patches the spec, like `kubectl patch --type=merge`.
func (h *harness) patchSpec(name string, spec string) {
	h.t.Helper()
	bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns}}
	require.NoError(h.t, h.c.Patch(h.ctx, bt, client.RawPatch("application/merge-patch+json", []byte(`{"spec":`+spec+`}`))))
}

// settle waits until the operator p has acted on everything it knew of the task name: it bumps
// a spec field that changes nothing the task does (ttlSecondsAfterOutcome.stopped, a day or
// more), which every controller of the operator reconciles, and waits until the status shows
// that generation observed and the journal has nothing queued for the task. A decision the
// operator would take by itself (a wrong retry, a rerun) has been taken by then: the condition
// a test waits for instead of a sleep before asserting that something did not happen.
func (h *harness) settle(p *operatorProcess, name string) {
	h.t.Helper()
	h.settles++
	h.patchSpec(name, fmt.Sprintf(`{"ttlSecondsAfterOutcome":{"stopped":%d}}`, 86400+h.settles))
	bt := h.get(name)
	require.Eventually(h.t, func() bool {
		cur := h.get(name)
		v, tracked := p.op.Journal.View(string(cur.UID))
		return cur.Status.ObservedGeneration >= bt.Generation && tracked && v.Backlog == 0
	}, waitTimeout, 20*time.Millisecond, "the operator observes generation %d of %s", bt.Generation, name)
}

// waitPhase waits until the CR has phase (and the extra condition, if any).
func (h *harness) waitPhase(name string, phase v1alpha1.Phase, extra ...func(*v1alpha1.BackgroundTask) bool) *v1alpha1.BackgroundTask {
	h.t.Helper()
	var last *v1alpha1.BackgroundTask
	require.Eventually(h.t, func() bool {
		bt := &v1alpha1.BackgroundTask{}
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, bt); err != nil {
			return false
		}
		last = bt
		if bt.Status.Phase != phase {
			return false
		}
		for _, f := range extra {
			if !f(bt) {
				return false
			}
		}
		return true
	}, waitTimeout, 20*time.Millisecond, "waiting for %s to be %s", name, phase)
	if last == nil || last.Status.Phase != phase {
		h.t.Fatalf("%s: last status %+v", name, last.Status)
	}
	return last
}

// waitRow waits until the task's row has status and returns it.
func (h *harness) waitRow(uid string, status lifecycle.Status) *store.Task {
	h.t.Helper()
	var row *store.Task
	require.Eventually(h.t, func() bool {
		r, err := h.repo.GetTask(h.ctx, uid)
		if err != nil {
			return false
		}
		row = r
		return r.Status == status
	}, waitTimeout, 20*time.Millisecond, "waiting for row %s to be %s", uid, status)
	return row
}

// waitDeleted waits until the task's row is soft-deleted and returns it.
func (h *harness) waitDeleted(uid string) *store.Task {
	h.t.Helper()
	var row *store.Task
	require.Eventually(h.t, func() bool {
		r, err := h.repo.GetTask(h.ctx, uid)
		row = r
		return err == nil && r.DeletedAt.Valid
	}, waitTimeout, 20*time.Millisecond, "waiting for row %s to be soft-deleted", uid)
	return row
}

// requireStays checks, for a while, that the object keeps satisfying ok: a negative property
// ("the status never shows X while Y") needs a window to be observed in. It asserts nothing
// about speed.
func (h *harness) requireStays(name string, window time.Duration, ok func(*v1alpha1.BackgroundTask) bool, msg string) {
	h.t.Helper()
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		bt := h.get(name)
		require.True(h.t, ok(bt), "%s: %+v", msg, bt.Status)
	}
}

// countRows counts the harness database's live rows with status.
func (h *harness) countRows(status string) int {
	h.t.Helper()
	var n int
	require.NoError(h.t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_tasks WHERE status = $1 AND deleted_at IS NULL`, status).Scan(&n))
	return n
}

// requireNotRunning checks that no test task of this uid executes any more (the probe counts
// executions in the test process, independently of the journal).
func (h *harness) requireNotRunning(uid string) {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return h.probes.runningOf(uid) == 0 }, waitTimeout, 20*time.Millisecond,
		"the run of %s stopped", uid)
}

// history returns the task's transitions as "FROM>TO@attempt" strings and checks contiguity.
func (h *harness) history(uid string) []string {
	h.t.Helper()
	recs, err := h.repo.History(h.ctx, uid)
	require.NoError(h.t, err)
	out := make([]string, 0, len(recs))
	for i, r := range recs {
		require.Equal(h.t, int64(i+1), r.Seq, "history of %s must be contiguous from seq 1", uid)
		from := "-"
		if r.FromStatus != nil {
			from = string(*r.FromStatus)
		}
		if i > 0 {
			require.Equal(h.t, string(recs[i-1].ToStatus), from, "each transition starts where the previous ended")
		}
		out = append(out, fmt.Sprintf("%s>%s@%d", from, r.ToStatus, r.Attempt))
	}
	return out
}

func condition(bt *v1alpha1.BackgroundTask, typ string) *metav1.Condition {
	for i := range bt.Status.Conditions {
		if bt.Status.Conditions[i].Type == typ {
			return &bt.Status.Conditions[i]
		}
	}
	return nil
}

// hasProgress: the running task has reported progress (so it is past its start).
func hasProgress(bt *v1alpha1.BackgroundTask) bool { return bt.Status.Progress != "" }

// findCondition is the task's condition of type typ, or nil.
func findCondition(bt *v1alpha1.BackgroundTask, typ string) *metav1.Condition {
	return meta.FindStatusCondition(bt.Status.Conditions, typ)
}

func hasCondition(typ string, status metav1.ConditionStatus, reason string) func(*v1alpha1.BackgroundTask) bool {
	return func(bt *v1alpha1.BackgroundTask) bool {
		c := condition(bt, typ)
		return c != nil && c.Status == status && (reason == "" || c.Reason == reason)
	}
}

// events returns "Type/Reason" of the Events about a task, oldest first.
func (h *harness) events(uid string) []string {
	h.t.Helper()
	var out []string
	for _, e := range h.eventObjects(uid) {
		out = append(out, e.Type+"/"+e.Reason)
	}
	return out
}

// eventNotes returns the text of the Events about a task, oldest first, joined by newlines.
func (h *harness) eventNotes(uid string) string {
	h.t.Helper()
	var out []string
	for _, e := range h.eventObjects(uid) {
		out = append(out, e.Type+"/"+e.Reason+": "+e.Message)
	}
	return strings.Join(out, "\n")
}

func (h *harness) eventObjects(uid string) []corev1.Event {
	h.t.Helper()
	var list corev1.EventList
	require.NoError(h.t, h.c.List(h.ctx, &list, client.InNamespace(h.ns)))
	var out []corev1.Event
	for _, e := range list.Items {
		if string(e.InvolvedObject.UID) == uid {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b corev1.Event) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out
}

func ctrlConfigSkipNameValidation() config.Controller {
	// Several operators start in one test process (restart, failover); controller-runtime
	// otherwise insists on process-wide unique controller names.
	return config.Controller{SkipNameValidation: ptr.To(true)}
}
