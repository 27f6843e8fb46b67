// Package outage_test starts the operator binary's code path (operator.Main) against a control
// plane and a PostgreSQL server that it can stop and start, to show what an outage of either
// does.
package outage_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner/builtin"
	"github.com/taskpilot/taskpilot/test/freeport"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	kubetest.RunShimIfInvoked() // StartInDir starts etcd and kube-apiserver through this binary
	os.Exit(pgtest.Main(m, &pg))
}

const waitTimeout = 2 * time.Minute

// TestStartedWithoutItsBackendsTheOperatorWaitsAndNeverExits: an operator started while both
// the API server and PostgreSQL are down stays up, not ready, saying why on /readyz; it becomes
// ready once both answer, and runs tasks: exiting at start-up (after a failed ping of
// PostgreSQL, or caches not filled within controller-runtime's 2 minutes) would be a crash loop
// under a Deployment.
func TestStartedWithoutItsBackendsTheOperatorWaitsAndNeverExits(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs kube-apiserver, etcd and PostgreSQL")
	}
	dir := t.TempDir()
	env, err := kubetest.StartInDir(kubetest.DirOptions{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := filepath.Join(dir, "kubeconfig")
	require.NoError(t, env.WriteKubeconfig(kubeconfig))
	dbURL := pg.NewDatabase(t)

	// Both backends go away before the operator starts.
	require.NoError(t, pg.Stop(pgtest.StopFast))
	t.Cleanup(func() { _ = pg.Restart() })
	apiAddr := env.APIServerAddr()
	apiBack := make(chan error, 1)
	go func() {
		_, err := env.RestartAPIServer(30 * time.Second)
		apiBack <- err
	}()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", apiAddr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	}, waitTimeout, 100*time.Millisecond, "the API server stops")

	port, err := freeport.Pick()
	require.NoError(t, err)
	probe := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan error, 1)
	go func() {
		exited <- operator.Main(ctx, []string{
			"--kubeconfig=" + kubeconfig, "--database-url=" + dbURL, "--identity=outage-0", "--incarnation=outage-0-pod",
			"--leader-elect", "--leader-election-namespace=default",
			"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(port),
			"--startup-database-timeout=2s",
		}, builtin.Register)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the operator stopped with an error: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the operator did not stop")
		}
	})
	stillUp := func() {
		t.Helper()
		select {
		case err := <-exited:
			t.Fatalf("the operator exited: %v", err)
		default:
		}
	}

	// Down: up, not ready, and it says why.
	waitProbe(t, probe+"/readyz/kubernetes", exited, "waiting for the API server")
	waitProbe(t, probe+"/readyz/startup", exited, "cannot prepare the database")
	require.NoError(t, <-apiBack, "the API server comes back")
	stillUp()
	waitProbe(t, probe+"/readyz/startup", exited, "cannot prepare the database")
	time.Sleep(5 * time.Second) // several failed attempts: still up
	stillUp()

	require.NoError(t, pg.Restart())
	require.Eventually(t, func() bool {
		code, _ := get(probe + "/readyz")
		return code == http.StatusOK
	}, waitTimeout, 200*time.Millisecond, "ready once both answer")
	stillUp()

	// And it works.
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	require.NoError(t, err)
	bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Name: "after", Namespace: corev1.NamespaceDefault},
		Spec: v1alpha1.BackgroundTaskSpec{TaskName: "countdown", Params: &runtime.RawExtension{Raw: []byte(`{"from":2,"interval":"10ms"}`)}}}
	require.NoError(t, c.Create(context.Background(), bt))
	require.Eventually(t, func() bool {
		var got v1alpha1.BackgroundTask
		return c.Get(context.Background(), client.ObjectKeyFromObject(bt), &got) == nil && got.Status.Phase == v1alpha1.PhaseFinished
	}, waitTimeout, 100*time.Millisecond, "a task runs to the end")
	stillUp()
}

// waitProbe waits until url answers 500 with want in its body (a failing check's reason).
func waitProbe(t *testing.T, url string, exited <-chan error, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var code int
	var body string
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the operator exited: %v", err)
		default:
		}
		if code, body = get(url); code == http.StatusInternalServerError && strings.Contains(body, want) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never said %q; last answer %d %q", url, want, code, body)
}

// get returns the status code and body of url (0 when it does not answer).
func get(url string) (int, string) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
