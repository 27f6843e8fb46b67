package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPluginAndWebView drives `kubectl taskpilot` and its web view against `make dev`, the way
// a user does: kubectl finds the plugin on PATH, the web view is opened in headless Chromium,
// and what the plugin does must show up in the open page by itself (live, no reload).
func TestPluginAndWebView(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts etcd, kube-apiserver, PostgreSQL, the operator and Chromium; skipped with -short")
	}
	chromium := findChromium(t)
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("kubectl is not on PATH; the plugin is run through it")
	}
	root := repoRoot(t)
	work := workDir(t)
	binDir := filepath.Join(work, "bin")
	devBin, opBin := filepath.Join(work, "dev"), filepath.Join(work, "taskpilot")
	t.Log("building hack/dev, the operator and kubectl-taskpilot")
	goBuild(t, root, "./hack/dev", devBin)
	goBuild(t, root, ".", opBin)
	goBuild(t, root, "./cmd/kubectl-taskpilot", filepath.Join(binDir, "kubectl-taskpilot"))

	readyFile := filepath.Join(work, "ready")
	dev := startDev(t, root, devBin, filepath.Join(work, "dev.log"), readyFile,
		"--dir", filepath.Join(work, "state"),
		"--operator", opBin,
		"--apiserver-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--postgres-port", strconv.Itoa(freePort(t)),
		"--metrics-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--probe-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
	)
	u := newUser(t, root, dev.waitReady(t, readyTimeout))
	u.env = append(u.env, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))

	u.kubectl("apply", "-f", "config/samples/")
	// The checksum sample would keep a core busy for minutes: stop it, with the plugin.
	out := u.kubectl("taskpilot", "stop", "checksum", "--wait")
	requireLine(t, out, `^checksum\s+stopped\s+spec\.state Running → Stopped\s+Stopped$`)
	requireLine(t, out, `^1 task: 1 stopped, 0 already there, 0 failed$`)
	u.waitFor("countdown", ".status.phase", "Running")

	url := startUI(t, u)
	b := newBrowser(t, chromium)

	t.Log("the list shows the samples")
	b.open(url)
	b.waitTrue("the list shows the four samples",
		`["checksum","countdown","flaky-with-timeout","invalid-params"].every(n => document.querySelector('tr[data-name="'+n+'"]'))`,
		`document.querySelector("#rows").innerText`, 30*time.Second)
	b.waitTrue("countdown is Running in the page", phaseIs("countdown", "Running"), `document.querySelector("#rows").innerText`, 30*time.Second)
	// Marks this document: a reload would lose it, so the pause below must arrive live.
	eval[bool](b, `window.sameDocument = true`)

	t.Log("a pause from the plugin appears in the open page")
	out = u.kubectl("taskpilot", "pause", "countdown")
	requireLine(t, out, `^countdown\s+paused\s+spec\.state Running → Paused$`)
	b.waitTrue("the page shows countdown Paused", phaseIs("countdown", "Paused"), `document.querySelector("#rows").innerText`, 30*time.Second)
	if !eval[bool](b, `window.sameDocument === true`) {
		t.Fatal("the page was reloaded: the update did not come through the live stream")
	}
	b.screenshot("list.png")

	t.Log("resume and restart with --wait; the task page's timeline shows two attempts")
	out = u.kubectl("taskpilot", "resume", "countdown", "--wait")
	requireLine(t, out, `^countdown\s+resumed\s+spec\.state Paused → Running\s+Running$`)
	out = u.kubectl("taskpilot", "restart", "countdown", "--wait")
	requireLine(t, out, `^countdown\s+restarted\s+restartGeneration 0 → 1\s+attempt 2 Running$`)
	b.open(url + "tasks/default/countdown")
	b.waitTrue("the timeline shows attempts 1 and 2",
		`[...document.querySelectorAll("svg.timeline g.lane")].map(g => g.dataset.attempt).join(",") === "1,2"`,
		`document.querySelector("#main").innerText`, 30*time.Second)
	b.waitTrue("attempt 2 is running in the timeline",
		`!!document.querySelector('g.lane[data-attempt="2"] rect.seg.current[data-status="RUNNING"]')`,
		`document.querySelector("svg.timeline").outerHTML`, 30*time.Second)
	if !eval[bool](b, `document.querySelector('g.lane[data-attempt="1"] rect.seg[data-status="PAUSED"]') !== null`) {
		t.Fatal("attempt 1 has no Paused stretch in the timeline")
	}
	if n := eval[float64](b, `document.querySelectorAll("#main table")[1].tBodies[0].rows.length`); n < 1 {
		t.Fatal("the task page lists no Events")
	}
	b.screenshot("task.png")

	t.Log("history and get read PostgreSQL")
	checkHistory(t, u)
	checkGet(t, u)

	t.Log("a TaskSchedule: run-now, its child, and its firings")
	checkSchedules(t, u)

	t.Log("a TaskQueue: paused with the plugin, a task waits for it, resumed, the task runs")
	checkQueues(t, u)

	t.Log("bulk: pause by label, again, and a task that does not exist")
	bulkPause(t, u)

	// Last, as they stop and restart everything: the README's examples, as written, on tasks
	// that carry the label they select.
	t.Log("the README's kubectl taskpilot examples")
	u.kubectl("label", "bgt", "-l", "batch=e2e", "batch=nightly", "--overwrite")
	runTour(t, u, readmeBlock(t, root, "## kubectl taskpilot"))
}

// checkSchedules runs a suspended schedule once with run-now and reads its firings back, as
// the operator's runtime database role wrote them.
func checkSchedules(t *testing.T, u *user) {
	t.Helper()
	path := filepath.Join(u.t.TempDir(), "schedule.yaml")
	manifest := `apiVersion: tasks.taskpilot.dev/v1alpha1
kind: TaskSchedule
metadata: {name: nightly}
spec:
  schedule: "30 2 * * *"
  timeZone: Europe/Berlin
  suspend: true
  template: {spec: {taskName: countdown, params: {from: 1, interval: 10ms}}}
`
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	u.kubectl("apply", "-f", path)
	out := u.kubectl("get", "bts")
	requireLine(t, out, `^NAME\s+SCHEDULE\s+TIMEZONE\s+SUSPEND\s+NEXT\s+LAST\s+ACTIVE\s+AGE$`)
	out = u.kubectl("taskpilot", "run-now", "nightly")
	m := regexp.MustCompile(`creates backgroundtask/(nightly-manual-\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run-now does not name the task it asks for:\n%s", out)
	}
	poll(t, time.Minute, "the operator creates "+m[1], func() (bool, string) {
		out, err := u.try("kubectl", "get", "bgt", m[1])
		return err == nil, out
	})
	u.waitFor(m[1], ".status.phase", "Finished")
	out = u.kubectl("taskpilot", "history", "bts/nightly")
	requireLine(t, out, `^SLOT\s+OUTCOME\s+TASK\s+MANUAL\s+REASON$`)
	requireLine(t, out, `\s+created\s+`+m[1]+`\s+true\s+run now: requested with the tasks.taskpilot.dev/run-now annotation$`)
}

// checkQueues pauses a TaskQueue with the plugin, sees a task that names it wait (and say why),
// resumes it, and sees the task run.
func checkQueues(t *testing.T, u *user) {
	t.Helper()
	path := filepath.Join(u.t.TempDir(), "queue.yaml")
	manifest := `apiVersion: tasks.taskpilot.dev/v1alpha1
kind: TaskQueue
metadata: {name: imports}
spec: {concurrency: 1}
`
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	u.kubectl("apply", "-f", path)
	out := u.kubectl("taskpilot", "queue", "pause", "imports", "--until", "1h")
	requireLine(t, out, `^taskqueue/imports paused until \S+Z$`)
	path = filepath.Join(u.t.TempDir(), "queued.yaml")
	if err := os.WriteFile(path, []byte(`apiVersion: tasks.taskpilot.dev/v1alpha1
kind: BackgroundTask
metadata: {name: queued-import}
spec: {taskName: countdown, params: {from: 1, interval: 10ms}, queue: imports}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	u.kubectl("apply", "-f", path)
	u.kubectl("wait", "--for=jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=QueueWaiting", "bgt/queued-import", "--timeout=120s")
	requireLine(t, u.kubectl("get", "bgt", "queued-import", "-o", "jsonpath={.status.message}"), `^queue "imports" is paused until `)
	poll(t, time.Minute, "the queue's status says paused", func() (bool, string) {
		out := u.kubectl("taskpilot", "queue")
		return regexp.MustCompile(`(?m)^\S+\s+imports\s+1\s+0\s+1\s+0\s+paused until `).MatchString(out), out
	})
	requireLine(t, u.kubectl("taskpilot", "queue", "resume", "imports"), `^taskqueue/imports resumed$`)
	u.waitFor("queued-import", ".status.phase", "Finished")
}

// phaseIs is a JavaScript test of the list row's phase.
func phaseIs(name, phase string) string {
	return fmt.Sprintf(`(document.querySelector('tr[data-name=%q] td.phase') || {}).innerText === %q`, name, phase)
}

// requireLine fails unless some line of out matches the regular expression.
func requireLine(t *testing.T, out, re string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)` + re).MatchString(out) {
		t.Fatalf("no line matches %s in:\n%s", re, out)
	}
}

// startUI runs `kubectl taskpilot ui --port 0` and returns the URL it prints. It is
// interrupted when the test ends.
func startUI(t *testing.T, u *user) string {
	t.Helper()
	cmd := exec.Command("kubectl", "taskpilot", "ui", "--port", "0")
	cmd.Dir, cmd.Env = u.root, u.env
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kubectl taskpilot ui: %v", err)
	}
	done := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("kubectl taskpilot ui exited with %v after Ctrl-C", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("kubectl taskpilot ui did not stop within 30s of Ctrl-C")
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() { done <- cmd.Wait() }()
	if err != nil {
		t.Fatalf("kubectl taskpilot ui printed no URL: %v", err)
	}
	m := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if m == "" {
		t.Fatalf("kubectl taskpilot ui: no URL in %q", line)
	}
	t.Logf("web view: %s", strings.TrimSpace(line))
	return m
}

// checkHistory reads countdown's history as JSON: paused and resumed in attempt 1, restarted
// into attempt 2.
func checkHistory(t *testing.T, u *user) {
	t.Helper()
	var doc struct {
		Task        map[string]any `json:"task"`
		Transitions []struct {
			Seq     int    `json:"seq"`
			To      string `json:"toStatus"`
			Attempt int    `json:"attempt"`
			Reason  string `json:"reason"`
		} `json:"transitions"`
	}
	out := u.kubectl("taskpilot", "history", "countdown", "-o", "json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("history -o json: %v\n%s", err, out)
	}
	if doc.Task["name"] != "countdown" || doc.Task["attempt"] != float64(2) {
		t.Fatalf("history's task row: %v", doc.Task)
	}
	var got []string
	for i, tr := range doc.Transitions {
		if tr.Seq != i+1 {
			t.Fatalf("transitions not numbered 1, 2, 3...: %+v", doc.Transitions)
		}
		got = append(got, fmt.Sprintf("%s/%d", tr.To, tr.Attempt))
	}
	want := []string{"PENDING/0", "RUNNING/1", "PAUSED/1", "RUNNING/1", "STOPPED/1", "RUNNING/2"}
	if !slices.Equal(got, want) {
		t.Fatalf("countdown's history is %v, want %v", got, want)
	}
	table := u.kubectl("taskpilot", "history", "countdown")
	requireLine(t, table, `^status:\s+RUNNING$`)
	requireLine(t, table, `^6\s+\S+ \S+\s+STOPPED\s+RUNNING\s+2\s+Started`)
}

// checkGet checks get's columns (kubectl get bgt's plus the last transition).
func checkGet(t *testing.T, u *user) {
	t.Helper()
	out := u.kubectl("taskpilot", "get")
	requireLine(t, out, `^NAME\s+TASK\s+DESIRED\s+PHASE\s+PROGRESS\s+ATTEMPT\s+STALLED\s+SCHEDULED\s+AGE\s+LAST TRANSITION$`)
	requireLine(t, out, `^countdown\s+countdown\s+Running\s+Running\s+\S+\s+2\s+\S+\s+STOPPED→RUNNING Started \S+ ago$`)
	requireLine(t, out, `^invalid-params\s+countdown\s+Running\s+Failed\s+1\s+\S+\s+PENDING→FAILED InvalidParams`)
	if out := u.kubectl("taskpilot", "get", "countdown", "-o", "jsonpath={.spec.restartGeneration}"); out != "1" {
		t.Fatalf("get -o jsonpath: %q", out)
	}
}

// bulkPause creates a batch of tasks, pauses them by label and waits, pauses them again
// (nothing to do), and checks that a missing task fails the command.
func bulkPause(t *testing.T, u *user) {
	t.Helper()
	const n = 20
	var manifest strings.Builder
	for i := range n {
		fmt.Fprintf(&manifest, `---
apiVersion: tasks.taskpilot.dev/v1alpha1
kind: BackgroundTask
metadata: {name: nap-%02d, labels: {batch: e2e}}
spec: {taskName: sleep, params: {duration: 10m, tick: 200ms}}
`, i)
	}
	path := filepath.Join(u.t.TempDir(), "batch.yaml")
	if err := os.WriteFile(path, []byte(manifest.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	u.kubectl("apply", "-f", path)
	u.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "bgt", "-l", "batch=e2e", "--timeout=120s")

	out := u.kubectl("taskpilot", "pause", "-l", "batch=e2e", "--wait")
	requireLine(t, out, `^nap-07\s+paused\s+spec\.state Running → Paused\s+Paused$`)
	requireLine(t, out, fmt.Sprintf(`^%d tasks: %d paused, 0 already there, 0 failed$`, n, n))
	out = u.kubectl("taskpilot", "pause", "-l", "batch=e2e")
	requireLine(t, out, `^nap-07\s+already there\s+spec\.state is already Paused$`)
	requireLine(t, out, fmt.Sprintf(`^%d tasks: 0 paused, %d already there, 0 failed$`, n, n))

	out, err := u.try("kubectl", "taskpilot", "stop", "nap-00", "no-such-task")
	if err == nil {
		t.Fatalf("a failed task must fail the command; output:\n%s", out)
	}
	requireLine(t, out, `^no-such-task\s+failed\s+not found$`)
	requireLine(t, out, `^2 tasks: 1 stopped, 0 already there, 1 failed$`)
	requireLine(t, out, `^error: 1 of 2 tasks failed$`)
}
