package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskpilot/taskpilot/test/freeport"
)

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// workDir is a temporary directory that the postgres user can enter (t.TempDir is private to
// its owner, and PostgreSQL refuses to run as root, so as root it runs as "postgres").
func workDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "taskpilot-e2e-")
	if err != nil {
		t.Fatalf("create work dir: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod work dir: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("E2E_KEEP") != "" {
			t.Logf("E2E_KEEP set: keeping %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// goBuild builds package pkg (relative to the repository root) into out.
func goBuild(t *testing.T, root, pkg, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// freePort returns an unused loopback port outside the ephemeral range (see package freeport).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// devProcess is one run of the dev tool.
type devProcess struct {
	cmd       *exec.Cmd
	logPath   string
	readyFile string
	done      chan struct{} // closed when the process has exited
	waitErr   error         // valid after done is closed
}

// startDev starts the dev tool with args in root, its output going to logPath. The process is
// interrupted (then killed) when the test ends if it is still running.
func startDev(t *testing.T, root, bin, logPath, readyFile string, args ...string) *devProcess {
	t.Helper()
	return startDevWithEnv(t, root, bin, logPath, readyFile, nil, args...)
}

// startDevWithEnv is startDev with extra environment variables (NAME=value).
func startDevWithEnv(t *testing.T, root, bin, logPath, readyFile string, extraEnv []string, args ...string) *devProcess {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create dev log: %v", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, append([]string{"--ready-file", readyFile}, args...)...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = logf, logf
	// Like a developer's shell, but without settings that would redirect it elsewhere: the
	// test exercises the local PostgreSQL, not a DATABASE_URL of the environment.
	cmd.Env = append(filterEnv(os.Environ(), "DATABASE_URL", "KUBECONFIG", "TASKPILOT_DEV_"), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	d := &devProcess{cmd: cmd, logPath: logPath, readyFile: readyFile, done: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-d.done:
			case <-time.After(90 * time.Second):
				_ = cmd.Process.Kill()
				<-d.done
			}
		}
		if t.Failed() {
			t.Logf("tail of %s:\n%s", logPath, tail(logPath, 80))
		}
	})
	return d
}

// waitReady waits for the ready file and returns the variables it exports.
func (d *devProcess) waitReady(t *testing.T, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if b, err := os.ReadFile(d.readyFile); err == nil {
			return parseExports(t, string(b))
		}
		select {
		case <-d.done:
			t.Fatalf("dev exited before it was ready (%v); log:\n%s", d.waitErr, tail(d.logPath, 80))
		case <-deadline:
			t.Fatalf("dev not ready within %v; log:\n%s", timeout, tail(d.logPath, 80))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// interrupt sends SIGINT (a Ctrl-C) and waits for the process to exit.
func (d *devProcess) interrupt(t *testing.T, timeout time.Duration) error {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("interrupt dev: %v", err)
	}
	select {
	case <-d.done:
		return d.waitErr
	case <-time.After(timeout):
		t.Fatalf("dev did not exit within %v of SIGINT; log:\n%s", timeout, tail(d.logPath, 80))
		return nil
	}
}

// exportLine matches `export NAME='value'` (the value quoted for a POSIX shell).
var exportLine = regexp.MustCompile(`^export ([A-Z_]+)='(.*)'$`)

// parseExports reads the export lines of an env file.
func parseExports(t *testing.T, content string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for line := range strings.Lines(content) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := exportLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected line in env file: %q", line)
		}
		vars[m[1]] = strings.ReplaceAll(m[2], `'\''`, `'`)
	}
	for _, name := range []string{"KUBECONFIG", "DATABASE_URL"} {
		if vars[name] == "" {
			t.Fatalf("env file does not export %s:\n%s", name, content)
		}
	}
	return vars
}

// filterEnv drops the variables named by (or, with a trailing underscore, prefixed by) drop.
func filterEnv(env []string, drop ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, d := range drop {
			if name == d || (strings.HasSuffix(d, "_") && strings.HasPrefix(name, d)) {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// user runs commands the way a developer does after `source bin/dev/env`.
type user struct {
	t    *testing.T
	root string
	env  []string
	url  string
}

func newUser(t *testing.T, root string, vars map[string]string) *user {
	env := filterEnv(os.Environ(), "DATABASE_URL", "KUBECONFIG")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return &user{t: t, root: root, env: env, url: vars["DATABASE_URL"]}
}

// run runs a command and returns its combined output, failing the test if it fails.
func (u *user) run(name string, args ...string) string {
	u.t.Helper()
	out, err := u.try(name, args...)
	if err != nil {
		u.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command and returns its combined output and error.
func (u *user) try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = u.root
	cmd.Env = u.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// kubectl runs kubectl.
func (u *user) kubectl(args ...string) string {
	u.t.Helper()
	return u.run("kubectl", args...)
}

// waitFor waits (kubectl wait) until the task's jsonpath expression equals value.
func (u *user) waitFor(task, jsonpath, value string) {
	u.t.Helper()
	u.kubectl("wait", "--for=jsonpath={"+jsonpath+"}="+value, "bgt/"+task, "--timeout=120s")
}

// psql runs one query with psql against DATABASE_URL, as `psql "$DATABASE_URL" -c '...'`.
func (u *user) psql(query string, extra ...string) string {
	u.t.Helper()
	args := append([]string{u.url, "-X", "-v", "ON_ERROR_STOP=1"}, extra...)
	return u.run("psql", append(args, "-c", query)...)
}

// poll calls check until it reports done, failing after timeout with its last message.
func poll(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v; last: %s", what, timeout, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cookbookQuery matches a marker line followed by a ```sql fenced block (as in
// store/cookbook_test.go).
var cookbookQuery = regexp.MustCompile("(?s)<!-- query: ([a-z0-9-]+) -->\\s*```sql\\n(.*?)```")

// cookbook returns the SQL cookbook of docs/schema.md by query name.
func cookbook(t *testing.T, root string) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "schema.md"))
	if err != nil {
		t.Fatalf("read the schema doc: %v", err)
	}
	queries := map[string]string{}
	for _, m := range cookbookQuery.FindAllStringSubmatch(string(doc), -1) {
		queries[m[1]] = m[2]
	}
	return queries
}

// process identifies a process across pid reuse.
type process struct {
	pid       int
	startTime string // field 22 of /proc/pid/stat
	comm      string
	cmdline   string
}

func (p process) String() string { return fmt.Sprintf("%d (%s) %s", p.pid, p.comm, p.cmdline) }

// readProcess reads a process from /proc; ok is false if it does not exist.
func readProcess(pid int) (p process, ppid int, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, 0, false
	}
	// comm is in parentheses and may contain spaces; fields after it are space-separated.
	s := string(stat)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return p, 0, false
	}
	fields := strings.Fields(s[closing+1:]) // fields[0] is field 3 (state)
	if len(fields) < 20 {
		return p, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return process{
		pid:       pid,
		startTime: fields[19],
		comm:      s[open+1 : closing],
		cmdline:   strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")),
	}, ppid, true
}

// procEntry is a process and its parent's pid.
type procEntry struct {
	p    process
	ppid int
}

// allProcesses lists the running processes by pid.
func allProcesses(t *testing.T) map[int]procEntry {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	procs := map[int]procEntry{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ppid, ok := readProcess(pid); ok {
			procs[pid] = procEntry{p, ppid}
		}
	}
	return procs
}

// descendants lists every process below pid.
func descendants(t *testing.T, pid int) []process {
	t.Helper()
	procs := allProcesses(t)
	children := map[int][]int{}
	for child, e := range procs {
		children[e.ppid] = append(children[e.ppid], child)
	}
	var out []process
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, procs[c].p)
			queue = append(queue, c)
		}
	}
	return out
}

// survivors returns the processes of before that still exist, and any process whose command
// line mentions dir.
func survivors(t *testing.T, before []process, dir string) []process {
	t.Helper()
	var alive []process
	for _, p := range before {
		if now, _, ok := readProcess(p.pid); ok && now.startTime == p.startTime {
			alive = append(alive, now)
		}
	}
	for _, e := range allProcesses(t) {
		if strings.Contains(e.p.cmdline, dir) && e.p.pid != os.Getpid() {
			alive = append(alive, e.p)
		}
	}
	return alive
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if err := sc.Err(); err != nil {
		lines = append(lines, fmt.Sprintf("(read error: %v)", err))
	}
	return strings.Join(lines, "\n")
}

// TestLeftoverDetection checks the orphan check itself: a child that outlives its parent's
// run is found both as a surviving descendant and by its command line.
func TestLeftoverDetection(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "watched")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tail", "-f", file) // one process, with dir in its command line
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	found := false
	before := descendants(t, os.Getpid())
	for _, p := range before {
		found = found || p.pid == cmd.Process.Pid
	}
	if !found {
		t.Fatalf("descendants of the test do not include pid %d: %v", cmd.Process.Pid, before)
	}
	if left := survivors(t, before, dir); len(left) == 0 {
		t.Fatal("a running child is not reported as a survivor")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	poll(t, 10*time.Second, "killed child is gone", func() (bool, string) {
		left := survivors(t, before, dir)
		return len(left) == 0, fmt.Sprint(left)
	})
}
