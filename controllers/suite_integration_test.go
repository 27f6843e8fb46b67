package controllers_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/runner"
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
	if isShort() {
		os.Exit(m.Run())
	}
	var err error
	kube, err = kubetest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := pgtest.Main(m, &pg)
	if err := kube.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

func isShort() bool {
	for _, a := range os.Args {
		if a == "-test.short=true" || a == "-test.short" {
			return true
		}
	}
	return false
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
	repo   *store.GormRepository
	op     *operatorProcess
	probes *probes
}

// probes lets test task types report what they observed.
type probes struct {
	running    atomic.Int64
	maxRunning atomic.Int64
	mu         sync.Mutex
	failures   map[string]int // flaky: key -> failures so far
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	c, err := client.New(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	ns := "t-" + rand.String(8)
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	h := &harness{t: t, ctx: ctx, ns: ns, c: c, probes: &probes{failures: map[string]int{}}}
	h.dbURL = server().NewDatabase(t)
	h.repo, err = store.Open(ctx, store.Config{URL: h.dbURL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.repo.Close() })
	return h
}

// operatorProcess is one running operator (a manager), as a pod would run it.
type operatorProcess struct {
	cancel  context.CancelFunc
	done    chan error
	repo    *store.GormRepository
	op      *controllers.Operator
	metrics *prometheus.Registry
	elected <-chan struct{}
}

type operatorConfig struct {
	maxConcurrent int
	dbURL         string
	leaderElect   bool
	// finalizerTimeout overrides the 10s used by tests.
	finalizerTimeout time.Duration
}

// startOperator starts an operator watching the harness namespace. It is stopped at cleanup.
func (h *harness) startOperator(cfg operatorConfig) *operatorProcess {
	h.t.Helper()
	if cfg.dbURL == "" {
		cfg.dbURL = h.dbURL
	}
	repo, err := store.Open(h.ctx, store.Config{URL: cfg.dbURL})
	require.NoError(h.t, err)
	lease, renew, retry := 4*time.Second, 3*time.Second, 500*time.Millisecond
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:                        kube.Scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		Cache:                         cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}},
		Controller:                    ctrlConfigSkipNameValidation(),
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              "taskpilot-test",
		LeaderElectionNamespace:       h.ns,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &lease,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
	})
	require.NoError(h.t, err)
	metrics := prometheus.NewRegistry()
	reg := runner.NewRegistry()
	require.NoError(h.t, runner.RegisterBuiltins(reg))
	h.registerTestTypes(reg)
	op, err := controllers.Setup(mgr, controllers.SetupOptions{
		Store:              repo,
		Registry:           reg,
		MaxConcurrentTasks: cfg.maxConcurrent,
		StopGrace:          2 * time.Second,
		DatabaseTimeout:    2 * time.Second,
		ProgressInterval:   500 * time.Millisecond,
		FinalizerTimeout:   cmp.Or(cfg.finalizerTimeout, 10*time.Second),
		// The production default: a fresh run's first status write waits 100ms.
		StatusCoalesceWindow: 100 * time.Millisecond,
		Metrics:              metrics,
	})
	require.NoError(h.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	p := &operatorProcess{cancel: cancel, done: make(chan error, 1), repo: repo, op: op, metrics: metrics, elected: mgr.Elected()}
	go func() { p.done <- mgr.Start(ctx) }()
	h.op = p
	h.t.Cleanup(p.stop)
	return p
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

func (h *harness) registerTestTypes(reg *runner.Registry) {
	// steps: N steps of `interval`, a pause point and a checkpoint every step; the result says
	// from which step the run started, which proves resumption from a checkpoint.
	reg.MustRegister("steps", func(params json.RawMessage) (runner.Task, error) {
		var p struct {
			Steps    int    `json:"steps"`
			Interval string `json:"interval"`
		}
		if err := json.Unmarshal(params, &p); err != nil || p.Steps <= 0 {
			return nil, fmt.Errorf("steps needs a positive 'steps': %w", runner.ErrInvalidParams)
		}
		d, _ := time.ParseDuration(p.Interval)
		return &stepsTask{steps: p.Steps, interval: d, probes: h.probes}, nil
	})
	// flaky: fails the first `failures` attempts (counted per `key`), then finishes.
	reg.MustRegister("flaky", func(params json.RawMessage) (runner.Task, error) {
		var p struct {
			Key      string `json:"key"`
			Failures int    `json:"failures"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, fmt.Errorf("%w: %w", runner.ErrInvalidParams, err)
		}
		return &flakyTask{key: p.Key, failures: p.Failures, probes: h.probes}, nil
	})
}

type stepsTask struct {
	runner.Base
	steps    int
	interval time.Duration
	probes   *probes
}

type stepsCheckpoint struct {
	Next int `json:"next"`
}

func (s *stepsTask) Run(ctx context.Context, ctl runner.Control) (json.RawMessage, error) {
	n := s.probes.running.Add(1)
	defer s.probes.running.Add(-1)
	for {
		cur := s.probes.maxRunning.Load()
		if n <= cur || s.probes.maxRunning.CompareAndSwap(cur, n) {
			break
		}
	}
	var cp stepsCheckpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil {
		return nil, err
	}
	started := cp.Next
	for i := cp.Next; i < s.steps; i++ {
		// A paused task gives its slot back: it is not "running" while parked.
		s.probes.running.Add(-1)
		err := ctl.Yield(ctx)
		s.probes.running.Add(1)
		if err != nil {
			return nil, err
		}
		if s.interval > 0 {
			select {
			case <-time.After(s.interval):
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		ctl.SetProgress(fmt.Sprintf("%d/%d", i+1, s.steps))
		if err := ctl.SaveCheckpoint(ctx, stepsCheckpoint{Next: i + 1}); err != nil {
			return nil, err
		}
	}
	return json.Marshal(map[string]int{"startedAt": started, "steps": s.steps})
}

type flakyTask struct {
	runner.Base
	key      string
	failures int
	probes   *probes
}

func (f *flakyTask) Run(context.Context, runner.Control) (json.RawMessage, error) {
	f.probes.mu.Lock()
	defer f.probes.mu.Unlock()
	if f.probes.failures[f.key] < f.failures {
		f.probes.failures[f.key]++
		return nil, fmt.Errorf("flaky failure %d of %d", f.probes.failures[f.key], f.failures)
	}
	return json.RawMessage(`{"ok":true}`), nil
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
func (h *harness) waitRow(uid string, status store.Status) *store.Task {
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

func uidKey(uid string) runner.Key { return runner.Key(uid) }
