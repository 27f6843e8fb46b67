// Package e2e drives the local development environment (hack/dev, what `make dev` runs) the
// way a developer does: start it, `source` its env file, use kubectl and psql, press Ctrl-C,
// start it again. It builds hack/dev and the operator itself, runs them with a temporary
// state directory and free ports (never touching bin/dev), and needs kubectl, psql, the
// PostgreSQL server binaries, and etcd and kube-apiserver from `make envtest`
// (KUBEBUILDER_ASSETS, default bin/k8s). Skipped with -short.
package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Generous timeouts: the machine running this may be small and busy.
const (
	readyTimeout = 3 * time.Minute
	stopTimeout  = 90 * time.Second
)

func TestDevEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts etcd, kube-apiserver, PostgreSQL and the operator; skipped with -short")
	}
	for _, tool := range []string{"kubectl", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH; the e2e test uses it the way a developer does", tool)
		}
	}
	root := repoRoot(t)
	work := workDir(t)
	devBin, opBin := filepath.Join(work, "dev"), filepath.Join(work, "taskpilot")
	t.Log("building hack/dev, the operator and kubectl-taskpilot")
	goBuild(t, root, "./hack/dev", devBin)
	goBuild(t, root, ".", opBin)
	pluginBin := filepath.Join(work, "bin", "kubectl-taskpilot") // the tour uses it
	goBuild(t, root, "./cmd/kubectl-taskpilot", pluginBin)

	state := filepath.Join(work, "state")
	readyFile := filepath.Join(work, "ready")
	args := []string{
		"--dir", state,
		"--operator", opBin,
		"--apiserver-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"--postgres-port", strconv.Itoa(freePort(t)),
		"--metrics-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"--probe-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
	}
	queries := cookbook(t, root)

	// First run, from an empty state directory.
	t.Log("first start (cold)")
	dev := startDev(t, root, devBin, filepath.Join(work, "dev-1.log"), readyFile, args...)
	vars := dev.waitReady(t, readyTimeout)
	checkEnvFile(t, state, vars)
	u := newUser(t, root, vars)

	t.Log("the README tour, as written")
	u.env = append(u.env, "PATH="+filepath.Dir(pluginBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	runTour(t, u, readmeBlock(t, root, "## A two-minute tour"))
	checkPrinterColumns(t, u.kubectl("get", "bgt"))
	// The checksum sample is sized to run for minutes; restart it with fewer blocks so it
	// finishes here. This also exercises a params change taking effect through a restart.
	u.kubectl("patch", "bgt", "checksum", "--type=merge", "-p",
		`{"spec":{"restartGeneration":1,"params":{"blocks":3000,"blockSize":65536,"seed":42}}}`)

	t.Log("docs/runner.md step 6, as written: a team's operator beside taskpilot's")
	runTutorial(t, u)

	t.Log("kubectl: pause, resume, stop, run again, restart")
	lifecycle(t, u)

	t.Log("kubectl: a task with invalid params fails for good; one of an unknown type is refused")
	u.waitFor("invalid-params", ".status.phase", "Failed")
	if out := u.kubectl("describe", "bgt", "invalid-params"); !strings.Contains(out, "InvalidParams") {
		t.Fatalf("kubectl describe bgt invalid-params does not mention InvalidParams:\n%s", out)
	}
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(typo, []byte("apiVersion: tasks.taskpilot.dev/v1alpha1\nkind: BackgroundTask\nmetadata: {name: typo}\nspec: {taskName: resize-images}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "the admission policy refuses a task type no operator serves", func() (bool, string) {
		out, err := u.try("kubectl", "create", "--dry-run=server", "-f", typo)
		return err != nil && strings.Contains(out, `no taskpilot operator in this cluster serves the task type "resize-images"`), out
	})
	u.waitFor("checksum", ".status.phase", "Finished")

	t.Log("psql: the schema doc's cookbook")
	sqlCookbook(t, u, queries)

	// Interrupt while countdown runs, with a checkpoint to resume from.
	before := countdownRow(t, u)
	poll(t, time.Minute, "countdown has a checkpoint of its current attempt", func() (bool, string) {
		before = countdownRow(t, u)
		return before.status == "RUNNING" && before.checkpointAttempt == before.attempt && before.done >= 3, before.String()
	})
	t.Logf("countdown before Ctrl-C: %s", before)
	interruptAndCheck(t, dev, state, readyFile)

	// Second run, on the data of the first, from a shell that sourced the env file: its
	// DATABASE_URL is the dev database itself, which dev must start rather than expect running.
	t.Log("second start (warm, after `source env`)")
	dev = startDevWithEnv(t, root, devBin, filepath.Join(work, "dev-2.log"), readyFile,
		[]string{"DATABASE_URL=" + vars["DATABASE_URL"]}, args...)
	u = newUser(t, root, dev.waitReady(t, readyTimeout))
	checkResumed(t, u, queries["task-history"], before)
	interruptAndCheck(t, dev, state, readyFile)
}

// checkEnvFile checks that the state directory's env file (for `source`) exports what the
// ready file does: the kubeconfig in the state directory and the local database.
func checkEnvFile(t *testing.T, state string, ready map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "env"))
	if err != nil {
		t.Fatalf("read env file: %v", err)
	}
	vars := parseExports(t, string(b))
	if !maps.Equal(vars, ready) {
		t.Fatalf("env file exports %v, ready file %v", vars, ready)
	}
	if want := filepath.Join(state, "kubeconfig"); vars["KUBECONFIG"] != want {
		t.Fatalf("KUBECONFIG=%s, want %s", vars["KUBECONFIG"], want)
	}
	if !strings.HasPrefix(vars["DATABASE_URL"], "postgres://taskpilot_reader@127.0.0.1:") || !strings.Contains(vars["DATABASE_URL"], "/taskpilot?") {
		t.Fatalf("DATABASE_URL=%s, want the local taskpilot database, as its reader", vars["DATABASE_URL"])
	}
}

// checkPrinterColumns checks the header of `kubectl get bgt` and that every sample is listed.
func checkPrinterColumns(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"NAME", "TASK", "DESIRED", "PHASE", "PROGRESS", "ATTEMPT", "STALLED", "SCHEDULED", "AGE"}
	if got := strings.Fields(lines[0]); !slices.Equal(got, want) {
		t.Fatalf("kubectl get bgt columns = %v, want %v:\n%s", got, want, out)
	}
	for _, name := range []string{"countdown", "checksum", "flaky-with-timeout", "invalid-params"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s`).MatchString(out) {
			t.Fatalf("kubectl get bgt does not list %s:\n%s", name, out)
		}
	}
}

// lifecycle drives countdown, which the tour left Stopped, through a new run, pause, resume,
// stop, another run and a restart.
func lifecycle(t *testing.T, u *user) {
	t.Helper()
	patch := func(spec string) {
		u.kubectl("patch", "bgt", "countdown", "--type=merge", "-p", `{"spec":`+spec+`}`)
	}
	number := func(jsonpath string) int {
		s := u.kubectl("get", "bgt", "countdown", "-o", "jsonpath={"+jsonpath+"}")
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("countdown %s %q: %v", jsonpath, s, err)
		}
		return n
	}
	u.waitFor("countdown", ".status.phase", "Stopped")
	stopped := number(".status.attempt")
	patch(`{"state":"Running"}`) // a stopped task set Running again: a new attempt
	u.waitFor("countdown", ".status.attempt", strconv.Itoa(stopped+1))
	u.waitFor("countdown", ".status.phase", "Running")
	patch(`{"state":"Paused"}`)
	u.waitFor("countdown", ".status.phase", "Paused")
	patch(`{"state":"Running"}`)
	u.waitFor("countdown", ".status.phase", "Running")
	patch(`{"state":"Stopped"}`)
	u.waitFor("countdown", ".status.phase", "Stopped")
	patch(`{"state":"Running"}`)
	u.waitFor("countdown", ".status.attempt", strconv.Itoa(stopped+2))
	u.waitFor("countdown", ".status.phase", "Running")
	patch(fmt.Sprintf(`{"restartGeneration":%d}`, number(".spec.restartGeneration")+1)) // another attempt, from scratch
	u.waitFor("countdown", ".status.attempt", strconv.Itoa(stopped+3))
	u.waitFor("countdown", ".status.phase", "Running")
}

// sqlCookbook runs queries of docs/schema.md verbatim and checks what psql prints.
func sqlCookbook(t *testing.T, u *user, queries map[string]string) {
	t.Helper()
	checks := []struct {
		name string
		want []*regexp.Regexp
	}{
		{"status-overview", []*regexp.Regexp{
			regexp.MustCompile(`(?m)^\s*status\s*\|\s*tasks\s*$`),
			regexp.MustCompile(`(?m)^\s*FAILED\s*\|\s*[1-9]\d*\s*$`),
			regexp.MustCompile(`(?m)^\s*FINISHED\s*\|\s*1\s*$`),
		}},
		{"running-by-type", []*regexp.Regexp{
			regexp.MustCompile(`(?m)^\s*countdown\s*\|\s*1\s*$`),
		}},
		{"failures-last-hour", []*regexp.Regexp{
			regexp.MustCompile(`(?m)^\s*default\s*\|\s*invalid-params\s*\|\s*countdown\s*\|\s*1\s*\|.*"from" must be between`),
		}},
		{"avg-run-time-by-type", []*regexp.Regexp{
			regexp.MustCompile(`(?m)^\s*checksum\s*\|\s*1\s*\|\s*\d+\.\d\s*$`),
		}},
	}
	for _, c := range checks {
		q, ok := queries[c.name]
		if !ok {
			t.Fatalf("docs/schema.md has no query %q", c.name)
		}
		out := u.psql(q)
		for _, re := range c.want {
			if !re.MatchString(out) {
				t.Fatalf("cookbook query %s: output does not match %s:\n%s", c.name, re, out)
			}
		}
	}
}

// taskRow is countdown's row in background_tasks.
type taskRow struct {
	status            string
	attempt           int
	checkpointAttempt int // -1 without checkpoint
	done              int // the checkpoint's step, -1 without checkpoint
	lastSeq           int
}

func (r taskRow) String() string {
	return fmt.Sprintf("status %s, attempt %d, checkpoint {done: %d} of attempt %d, last_seq %d",
		r.status, r.attempt, r.done, r.checkpointAttempt, r.lastSeq)
}

// countdownRow reads countdown's row with psql.
func countdownRow(t *testing.T, u *user) taskRow {
	t.Helper()
	out := strings.TrimSpace(u.psql(`SELECT status, attempt, coalesce(checkpoint_attempt, -1),
       coalesce((checkpoint->>'done')::int, -1), last_seq
FROM background_tasks WHERE namespace = 'default' AND name = 'countdown' AND deleted_at IS NULL`, "-A", "-t", "-F", " "))
	var r taskRow
	if _, err := fmt.Sscan(out, &r.status, &r.attempt, &r.checkpointAttempt, &r.done, &r.lastSeq); err != nil {
		t.Fatalf("parse countdown row %q: %v", out, err)
	}
	return r
}

// interruptAndCheck presses Ctrl-C and checks that dev exits 0, leaving no process behind.
func interruptAndCheck(t *testing.T, dev *devProcess, state, readyFile string) {
	t.Helper()
	children := descendants(t, dev.cmd.Process.Pid)
	var names []string
	for _, p := range children {
		names = append(names, p.comm)
	}
	for _, want := range []string{"etcd", "kube-apiserver", "postgres", "taskpilot"} {
		if !slices.Contains(names, want) {
			t.Fatalf("dev has no %s child before Ctrl-C; children: %v", want, names)
		}
	}
	t.Logf("Ctrl-C (%d processes below dev)", len(children))
	if err := dev.interrupt(t, stopTimeout); err != nil {
		t.Fatalf("dev exited with %v after Ctrl-C, want exit status 0; log:\n%s", err, tail(dev.logPath, 40))
	}
	poll(t, 10*time.Second, "no process of the dev environment survives", func() (bool, string) {
		left := survivors(t, children, state)
		return len(left) == 0, fmt.Sprint(left)
	})
	if _, err := os.Stat(readyFile); !os.IsNotExist(err) {
		t.Fatalf("ready file still there after exit (stat: %v)", err)
	}
}

// checkResumed checks that countdown, interrupted at before, continued the same attempt from
// its checkpoint: the history shows RUNNING -> RUNNING for that attempt after the restart,
// and no checkpoint after the restart is below the one before.
func checkResumed(t *testing.T, u *user, historyQuery string, before taskRow) {
	t.Helper()
	if out := u.kubectl("get", "bgt", "countdown", "-o", "jsonpath={.spec.taskName}"); out != "countdown" {
		t.Fatalf("countdown did not survive the restart (etcd data kept): %q", out)
	}
	// The cookbook's full-history query, with its example name changed as the doc says.
	query := strings.ReplaceAll(historyQuery, "'nightly-report'", "'countdown'")
	resumed := regexp.MustCompile(`(?m)^[^|]+\|\s*(\d+)\s*\|\s*RUNNING\s*\|\s*RUNNING\s*\|\s*` + strconv.Itoa(before.attempt) + `\s*\|\s*Started\s*\|`)
	poll(t, 2*time.Minute, "history shows countdown resumed (RUNNING -> RUNNING, same attempt)", func() (bool, string) {
		out := u.psql(query)
		for _, m := range resumed.FindAllStringSubmatch(out, -1) {
			if seq, _ := strconv.Atoi(m[1]); seq > before.lastSeq {
				return true, out
			}
		}
		return false, out
	})

	first := true
	poll(t, time.Minute, "countdown continues from its checkpoint", func() (bool, string) {
		r := countdownRow(t, u)
		if r.attempt != before.attempt || r.checkpointAttempt != before.attempt || r.done < before.done {
			t.Fatalf("countdown restarted instead of resuming: before Ctrl-C %s; after restart %s", before, r)
		}
		if first {
			t.Logf("countdown after restart: %s", r)
			first = false
		}
		return r.status == "RUNNING" && r.done > before.done, r.String()
	})
	u.waitFor("countdown", ".status.attempt", strconv.Itoa(before.attempt))
}
