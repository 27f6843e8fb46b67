// Package e2e runs the example operator as a team would: built from this module, started as a
// process against a real kube-apiserver and PostgreSQL, its checks started through the
// example's web service (taskpilot's typed client), paused, resumed, and resumed from their
// checkpoint after the operator was killed.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/examples/linkcheck"
	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/test/harness"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// pages is the size of the site the test checks, 100ms apart: long enough to kill the operator
// in the middle.
const pages = 120

var (
	kube *kubetest.Env
	pg   *pgtest.Server
)

func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m, &kube, func() int { return pgtest.Main(m, &pg) }))
}

func TestTheExampleOperatorRunsPausesResumesAndSurvivesAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: needs kube-apiserver, etcd and PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	binary := filepath.Join(dir, "linkcheck-operator")
	build := exec.Command("go", "build", "-o", binary, "./cmd/linkcheck-operator")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the example operator: %s", out)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	require.NoError(t, kube.WriteKubeconfig(kubeconfig))

	c, err := client.New(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	ns := "lc-" + rand.String(6)
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	dbURL := pg.NewDatabase(t)

	logPath := filepath.Join(dir, "operator.log")
	start := func() *harness.Operator {
		op, err := harness.StartOperator(harness.OperatorSpec{Binary: binary, LogPath: logPath,
			Args: []string{"--deployment=linkcheck", "--leader-election-namespace=" + ns, "--identity=linkcheck-0", "--incarnation=linkcheck-0-pod", "--stop-grace=2s"},
			Env:  []string{"KUBECONFIG=" + kubeconfig, "DATABASE_URL=" + dbURL}})
		require.NoError(t, err)
		require.NoError(t, op.WaitReady(ctx, time.Minute), "operator log: %s", logPath)
		return op
	}
	op := start()
	t.Cleanup(func() {
		_ = op.Stop(10 * time.Second)
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("operator log:\n%s", log)
		}
	})

	// The site to check: 120 pages, one of them missing.
	var mu sync.Mutex
	asked := map[string]int{}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/page/7" {
			http.NotFound(w, r)
		}
	}))
	defer site.Close()
	var urls []string
	for i := range pages {
		urls = append(urls, fmt.Sprintf("%s/page/%d", site.URL, i))
	}

	// The application's web service starts the check through the typed client.
	tasks, err := operator.NewClient(ctx, kube.Config, operator.ClientOptions{Namespace: ns, DatabaseURL: dbURL})
	require.NoError(t, err)
	defer tasks.Close()
	api := httptest.NewServer(linkcheck.API(tasks))
	defer api.Close()
	body, err := json.Marshal(linkcheck.Params{URLs: urls, PerHostInterval: 100_000_000}) // 100ms
	require.NoError(t, err)
	post := func() (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.URL+"/checks", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Idempotency-Key", "nightly-2026-12-04")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var got struct{ Name string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		return resp.StatusCode, got.Name
	}
	code, name := post()
	require.Equal(t, http.StatusAccepted, code)
	code, again := post()
	require.Equal(t, http.StatusOK, code, "a retried request finds the check it created")
	require.Equal(t, name, again)

	db, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { _ = db.Close(ctx) }()
	checkpointed := func() int { // the next page of the last checkpoint in the row
		var next int
		_ = db.QueryRow(ctx, `SELECT coalesce((checkpoint->>'next')::int, 0) FROM background_tasks WHERE namespace = $1 AND name = $2`,
			ns, name).Scan(&next)
		return next
	}
	patch := func(state v1alpha1.DesiredState) {
		require.NoError(t, c.Patch(ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
			client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"state":%q}}`, state))))
	}
	wait := func(phase v1alpha1.Phase) *v1alpha1.BackgroundTask {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		bt, err := tasks.Wait(wctx, name, phase)
		require.NoError(t, err)
		return bt
	}

	wait(v1alpha1.PhaseRunning)
	patch(v1alpha1.DesiredPaused)
	wait(v1alpha1.PhasePaused)
	patch(v1alpha1.DesiredRunning)
	wait(v1alpha1.PhaseRunning)
	require.Eventually(t, func() bool { return checkpointed() >= 20 }, 2*time.Minute, 50*time.Millisecond)
	require.NoError(t, op.Kill())
	op = start() // the same pod restarted: it takes its tasks back and resumes them

	done := wait(v1alpha1.PhaseFinished)
	var report linkcheck.Report
	require.NoError(t, json.Unmarshal(done.Status.Result.Raw, &report))
	require.Equal(t, pages, report.Checked)
	require.Equal(t, pages-1, report.OK)
	require.Equal(t, []linkcheck.Link{{URL: site.URL + "/page/7", Status: 404}}, report.Broken)
	mu.Lock()
	for i := range pages {
		require.NotZero(t, asked[fmt.Sprintf("/page/%d", i)], "page %d was checked", i)
		require.LessOrEqual(t, asked[fmt.Sprintf("/page/%d", i)], 2, "page %d: at most once again after the kill (the work since the last checkpoint)", i)
	}
	mu.Unlock()

	history, err := tasks.History(ctx, name)
	require.NoError(t, err)
	var steps []string
	for _, h := range history {
		require.Equal(t, 1, max(h.Attempt, 1), "one attempt throughout: paused, resumed, resumed after the kill")
		steps = append(steps, string(h.From)+">"+string(h.To))
	}
	path := strings.Join(steps, " ")
	require.Contains(t, path, "Running>Paused Paused>Running", path)
	require.Contains(t, path, "Running>Running", "the restarted operator resumed the run from its checkpoint: %s", path)
	require.True(t, strings.HasSuffix(path, "Running>Finished"), path)

	var tt v1alpha1.TaskType
	require.NoError(t, c.Get(ctx, client.ObjectKey{Name: linkcheck.TaskName}, &tt))
	require.Equal(t, "linkcheck", tt.Status.ServedBy[0].Deployment)
}
