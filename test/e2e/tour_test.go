package e2e

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the commands of the first ```sh block after heading in README.md, one
// per line, without their trailing comments.
func readmeBlock(t *testing.T, root, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	text = text[i:]
	start := strings.Index(text, "```sh\n")
	if start < 0 {
		t.Fatalf("README.md %q has no sh block", heading)
	}
	text = text[start+len("```sh\n"):]
	text = text[:strings.Index(text, "```")]
	comment := regexp.MustCompile(`\s+#\s.*$`)
	var cmds []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(comment.ReplaceAllString(line, "")); line != "" {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// runTour runs a README block's commands as written, in a shell, as a user who sourced the env
// file does (the env is the user's). Three kinds cannot run as written in a test: the `source`
// line (its variables are already the user's, and checkEnvFile compares them with the file); a
// watch (-w), which runs for a few seconds and must print the columns it promises; and
// `kubectl taskpilot ui`, a server until Ctrl-C, which must start and print its URL.
func runTour(t *testing.T, u *user, cmds []string) {
	t.Helper()
	for _, cmd := range cmds {
		switch {
		case strings.HasPrefix(cmd, "source "):
			continue
		case strings.HasSuffix(cmd, " -w"):
			checkPrinterColumns(t, runFor(u, cmd, 3*time.Second))
		case cmd == "kubectl taskpilot ui":
			if out := runFor(u, cmd, 5*time.Second); !strings.Contains(out, "http://127.0.0.1:") {
				t.Fatalf("%s printed no URL in 5 s:\n%s", cmd, out)
			}
		default:
			t.Logf("$ %s", cmd)
			out := u.run("bash", "-c", cmd)
			if cmd == "kubectl apply -f config/samples/" {
				continue
			}
			t.Logf("%s", strings.TrimSpace(out))
		}
	}
}

// runFor runs cmd in a shell for d, then kills it (as Ctrl-C would), and returns its output.
func runFor(u *user, cmd string, d time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-c", "exec "+cmd)
	c.Dir, c.Env = u.root, u.env
	out, _ := c.CombinedOutput() // killed at the end of d
	return string(out)
}
