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

// runTour runs the README tour's commands as written, in a shell, as a user who sourced the
// env file does (the env is the user's). Two cannot run as written in a test: the `source`
// line (its variables are already the user's, and checkEnvFile compares them with the file),
// and a watch (-w), which runs for a few seconds and must print the columns it promises.
func runTour(t *testing.T, u *user, cmds []string) {
	t.Helper()
	for _, cmd := range cmds {
		switch {
		case strings.HasPrefix(cmd, "source "):
			continue
		case strings.HasSuffix(cmd, " -w"):
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c := exec.CommandContext(ctx, "bash", "-c", cmd)
			c.Dir, c.Env = u.root, u.env
			out, _ := c.CombinedOutput() // killed by the timeout, as Ctrl-C would
			cancel()
			checkPrinterColumns(t, string(out))
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
