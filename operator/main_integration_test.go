package operator_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// The integration tests of the public package: operators built with Add, as a team's program
// builds them, on a real kube-apiserver and PostgreSQL.
var (
	kube *kubetest.Env
	pg   *pgtest.Server
)

const waitTimeout = 90 * time.Second

func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m, &kube, func() int { return pgtest.Main(m, &pg) }))
}

// world is one test's namespace and database.
type world struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	dbURL string
	c     client.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs kube-apiserver, etcd and PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	c, err := client.New(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	w := &world{t: t, ctx: ctx, ns: "op-" + rand.String(6), c: c, dbURL: pg.NewDatabase(t)}
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns,
		Labels: map[string]string{"taskpilot-test": w.ns}}}))
	return w
}

// start runs an operator of deployment with register's task types, added to a program's
// manager as the package documents (New, CacheByObject, SetupWithManager), until the test ends.
func (w *world) start(deployment string, register operator.Register) {
	w.t.Helper()
	w.startWith(deployment, register, prometheus.NewRegistry(), nil)
}

// startWith is start with the options changed by set, and the metrics in reg.
func (w *world) startWith(deployment string, register operator.Register, reg *prometheus.Registry,
	set func(*operator.Options)) *operator.Operator {
	w.t.Helper()
	o := operator.NewOptions()
	o.DatabaseURL, o.Deployment, o.Namespace, o.Identity = w.dbURL, deployment, w.ns, deployment+"-0"
	o.Metrics = reg // several operators share the test process
	o.StopGrace = 2 * time.Second
	if set != nil {
		set(&o)
	}
	op, err := operator.New(o, register)
	require.NoError(w.t, err)
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:                 kube.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{w.ns: {}}, ByObject: op.CacheByObject()},
		Controller:             config.Controller{SkipNameValidation: ptrTo(true)},
	})
	require.NoError(w.t, err)
	require.NoError(w.t, op.SetupWithManager(mgr))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		require.NoError(w.t, <-done)
		require.NoError(w.t, op.Close())
	})
	return op
}

func ptrTo[T any](v T) *T { return &v }
