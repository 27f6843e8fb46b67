package operator_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner/builtin"
	"github.com/taskpilot/taskpilot/test/harness"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// TestMetricsNeedAToken: the operator's metrics endpoint (as Main serves it, the Deployment's
// default) is HTTPS and answers only to a caller the API server authenticates and allows to get
// /metrics: the Prometheus ServiceAccount bound to the metrics-reader role, not anyone on the
// cluster network.
func TestMetricsNeedAToken(t *testing.T) {
	w := newWorld(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, kube.WriteKubeconfig(kubeconfig))
	port, err := harness.FreePort()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- operator.Main(ctx, []string{"--kubeconfig=" + kubeconfig, "--database-url=" + w.dbURL,
			"--leader-election-namespace=" + w.ns, "--identity=metrics-0",
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port), "--health-probe-bind-address=0"}, builtin.Register)
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
	// The operator serves a self-signed certificate of its own.
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) int {
		req, err := http.NewRequestWithContext(w.ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := insecure.Do(req)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Eventually(t, func() bool { return get("") == http.StatusUnauthorized }, waitTimeout, 200*time.Millisecond,
		"without a token the metrics are refused")

	cs, err := kubernetes.NewForConfig(kube.Config)
	require.NoError(t, err)
	token := func(sa string) string {
		_, err := cs.CoreV1().ServiceAccounts(w.ns).Create(w.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		require.NoError(t, err)
		tr, err := cs.CoreV1().ServiceAccounts(w.ns).CreateToken(w.ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		require.NoError(t, err)
		return tr.Status.Token
	}
	prometheus, stranger := token("prometheus"), token("stranger")
	reader := w.metricsReaderRole()
	_, err = cs.RbacV1().ClusterRoleBindings().Create(w.ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "metrics-" + w.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: w.ns}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return get(prometheus) == http.StatusOK }, waitTimeout, 200*time.Millisecond,
		"the Prometheus ServiceAccount reads them")
	require.Equal(t, http.StatusForbidden, get(stranger), "another ServiceAccount does not")
}

// metricsReaderRole creates config/rbac's metrics-reader ClusterRole under a name of this test.
func (w *world) metricsReaderRole() string {
	w.t.Helper()
	raw, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "config", "rbac", "metrics_reader_role.yaml"))
	require.NoError(w.t, err)
	var role rbacv1.ClusterRole
	require.NoError(w.t, yaml.Unmarshal(raw, &role))
	role.Name += "-" + w.ns
	require.NoError(w.t, w.c.Create(w.ctx, &role))
	return role.Name
}
