package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tutorialCommands returns the commands of docs/runner.md's step 6 block as a reader types them:
// a line ending in a backslash continues on the next, a heredoc runs to its end marker.
func tutorialCommands(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "runner.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, text, ok := strings.Cut(string(b), "**6. The operator**")
	if !ok {
		t.Fatal("docs/runner.md has no step 6")
	}
	_, text, ok = strings.Cut(text, "```sh\n")
	if !ok {
		t.Fatal("docs/runner.md step 6 has no sh block")
	}
	text, _, _ = strings.Cut(text, "```")
	var cmds []string
	var cur strings.Builder
	heredoc := ""
	for _, line := range strings.Split(text, "\n") {
		switch {
		case heredoc != "":
			cur.WriteString("\n" + line)
			if strings.TrimSpace(line) == heredoc {
				cmds, heredoc = append(cmds, cur.String()), ""
				cur.Reset()
			}
			continue
		case strings.TrimSpace(line) == "":
			continue
		}
		if cur.Len() > 0 {
			cur.WriteString(" ")
		}
		code, _, _ := strings.Cut(line, "  # ")
		code = strings.TrimSpace(code)
		if _, marker, ok := strings.Cut(code, "<<'"); ok {
			heredoc = strings.TrimSuffix(marker, "'")
			cur.WriteString(code)
			continue
		}
		if strings.HasSuffix(code, `\`) {
			cur.WriteString(strings.TrimSuffix(code, `\`))
			continue
		}
		cur.WriteString(code)
		cmds = append(cmds, cur.String())
		cur.Reset()
	}
	if heredoc != "" || cur.Len() > 0 {
		t.Fatalf("docs/runner.md step 6 ends inside a command: %q", cur.String())
	}
	return cmds
}

// runTutorial runs docs/runner.md's step 6 as written, from the tutorial's module
// (examples/, whose primes package and cmd/primes-operator are the tutorial's code), on the
// running dev environment: the team's operator starts next to taskpilot's (a server: it runs
// in the background until the test ends), publishes its task type, and runs, pauses and
// resumes a task. Then it checks what the reader is told to expect.
func runTutorial(t *testing.T, u *user) {
	t.Helper()
	dir := filepath.Join(u.root, "examples")
	var operator *exec.Cmd
	for _, cmd := range tutorialCommands(t, u.root) {
		t.Logf("$ %s", cmd)
		switch {
		case strings.Contains(cmd, "go run ./cmd/primes-operator"):
			operator = exec.Command("bash", "-c", "exec env "+cmd)
			operator.Dir, operator.Env = dir, u.env
			logFile, err := os.Create(filepath.Join(workDir(t), "primes-operator.log"))
			if err != nil {
				t.Fatal(err)
			}
			operator.Stdout, operator.Stderr = logFile, logFile
			operator.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := operator.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = syscall.Kill(-operator.Process.Pid, syscall.SIGKILL) // if the test failed before stopping it
				_ = logFile.Close()
			})
			// It compiles first: wait until it published its task type, as `kubectl get
			// tasktypes` is the reader's next step.
			poll(t, 5*time.Minute, "the primes operator publishes its task type", func() (bool, string) {
				out, err := u.try("kubectl", "get", "tasktype", "primes", "-o", "jsonpath={.status.servedBy[*].deployment}")
				return err == nil && strings.Contains(out, "primes"), out + "\n" + tail(logFile.Name(), 20)
			})
		case strings.HasSuffix(cmd, " -w"):
			out := runForIn(u, dir, cmd, 3*time.Second)
			if !strings.Contains(out, "primes") {
				t.Fatalf("%s showed no primes task:\n%s", cmd, out)
			}
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			c := exec.CommandContext(ctx, "bash", "-c", cmd)
			c.Dir, c.Env = dir, u.env
			out, err := c.CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			t.Logf("%s", strings.TrimSpace(string(out)))
		}
		if strings.Contains(cmd, `"state":"Paused"`) {
			u.waitFor("primes", ".status.phase", "Paused")
		}
	}
	if operator == nil {
		t.Fatal("docs/runner.md step 6 never starts the operator")
	}
	u.waitFor("primes", ".status.phase", "Running")
	if out := u.kubectl("get", "tasktype", "primes", "-o", "jsonpath={.status.servedBy[0].description}"); out != "Counts the primes below a limit" {
		t.Fatalf("the primes TaskType describes itself as %q", out)
	}
	u.kubectl("delete", "bgt", "primes", "--wait=true")
	// Stopped now, as the reader's Ctrl-C would: a client still watching would hold the API
	// server's shutdown back when the dev environment stops.
	stopGroup(t, operator)
}

// stopGroup sends SIGTERM to cmd's process group and waits for it (SIGKILL after 30 s).
func stopGroup(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Errorf("the primes operator did not stop within 30 s of SIGTERM")
	}
}

// runForIn is runFor in dir.
func runForIn(u *user, dir, cmd string, d time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-c", "exec "+cmd)
	c.Dir, c.Env = dir, u.env
	out, _ := c.CombinedOutput()
	return string(out)
}
