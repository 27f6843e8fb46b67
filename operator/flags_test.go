package operator

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

func TestRedactedDatabaseNeverShowsThePassword(t *testing.T) {
	for _, raw := range []string{
		"postgres://taskpilot:s3cr3t@db.example:5432/tasks?sslmode=require",
		"host=db.example user=taskpilot password=s3cr3t dbname=tasks",
	} {
		got := redactedDatabase(raw)
		require.NotContains(t, got, "s3cr3t")
		require.Contains(t, got, "db.example")
		require.Contains(t, got, "tasks")
	}
}

func TestFlagDefaults(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x@y/z")
	cfg, proc, _, err := parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), []string{"--max-concurrent-tasks=7", "--kubeconfig=/tmp/kc"})
	require.NoError(t, err)
	require.Equal(t, "postgres://x@y/z", cfg.DatabaseURL, "--database-url defaults to $DATABASE_URL")
	require.Equal(t, 7, cfg.MaxConcurrentTasks)
	require.Equal(t, "/tmp/kc", proc.Kubeconfig)
	require.False(t, cfg.LeaderElect, "off for local runs; the Deployment turns it on")
	require.Equal(t, 10*time.Second, cfg.ProgressUpdateInterval)
	require.Equal(t, "taskpilot", cfg.Deployment, "one deployment needs no name")

	_, _, _, err = parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), []string{"--kubeconfig=/dev/null"})
	require.NoError(t, err, "--kubeconfig is accepted (make dev passes it)")
}

// TestUsageNeverPrintsTheDatabasePassword: -h and every flag error print the usage text with
// each flag's default; $DATABASE_URL, which holds a password, must not be one of them.
func TestUsageNeverPrintsTheDatabasePassword(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://taskpilot:s3cr3t@db.example:5432/tasks")
	for _, args := range [][]string{{"-h"}, {"--no-such-flag"}, {"--max-concurrent-tasks=many"}} {
		fs := flag.NewFlagSet("taskpilot", flag.ContinueOnError)
		var out strings.Builder
		fs.SetOutput(&out)
		_, _, _, err := parseFlags(fs, args)
		require.Error(t, err, "%v", args)
		require.Contains(t, out.String(), "-database-url", "the usage text was printed")
		require.NotContains(t, out.String(), "s3cr3t", "%v printed the password", args)
	}
}

func TestIdentityAndNamespaceDefaults(t *testing.T) {
	t.Setenv("POD_NAME", "taskpilot-7d9f-abcde")
	t.Setenv("POD_NAMESPACE", "taskpilot-system")
	t.Setenv("DATABASE_URL", "postgres://x@y/z")
	cfg, _, _, err := parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), nil)
	require.NoError(t, err)
	require.Equal(t, "taskpilot-7d9f-abcde", cfg.Identity, "the pod name is unique among replicas")
	require.Equal(t, "taskpilot-system", cfg.Namespace)
}

// TestQuantitiesAreParsedByTheFlags: --memory-budget and --journal-max-bytes become byte counts
// when the flags are read, and a bad value is a flag error, not a start-up failure later.
func TestQuantitiesAreParsedByTheFlags(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x@y/z")
	parse := func(args ...string) (Options, error) {
		fs := flag.NewFlagSet("taskpilot", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o, _, _, err := parseFlags(fs, args)
		return o, err
	}
	for value, want := range map[string]int64{"400Mi": 400 << 20, "0": 0, "1G": 1_000_000_000} {
		o, err := parse("--memory-budget=" + value)
		require.NoError(t, err, value)
		require.Equal(t, want, o.MemoryBudget, value)
	}
	o, err := parse("--journal-max-bytes=64Mi")
	require.NoError(t, err)
	require.Equal(t, int64(64<<20), o.JournalMaxBytes)
	for _, bad := range []string{"--memory-budget=lots", "--journal-max-bytes=0", "--journal-max-bytes=-1Mi"} {
		_, err := parse(bad)
		require.ErrorContains(t, err, "want a quantity", bad)
	}

	t.Setenv("GOMEMLIMIT", "1073741824") // the Deployment's limits.memory, 1Gi
	o, err = parse("--memory-budget=auto")
	require.NoError(t, err)
	gib := int64(1 << 30)
	require.Equal(t, int64(float64(gib)*0.6), o.MemoryBudget)
	require.Equal(t, o.MemoryBudget, NewOptions().MemoryBudget, "auto is the default")
	t.Setenv("GOMEMLIMIT", "512MiB")
	half := int64(512 << 20)
	require.Equal(t, int64(float64(half)*0.6), AutoMemoryBudget())
	require.Zero(t, parseLimit("max"), "cgroup without a limit")
}

// TestVersionPrintsTheBuild: `taskpilot version` prints one line, or JSON with -o json, and
// refuses an unknown format.
func TestVersionPrintsTheBuild(t *testing.T) {
	var line, js bytes.Buffer
	require.NoError(t, printVersion(&line, nil))
	require.Contains(t, line.String(), runtime.Version())
	require.NoError(t, printVersion(&js, []string{"-o", "json"}))
	var got map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &got))
	require.NotEmpty(t, got["version"])
	require.Equal(t, runtime.GOOS+"/"+runtime.GOARCH, got["platform"])
	require.Error(t, printVersion(&js, []string{"-o", "yaml"}))
}

// TestEveryFlagIsInTheREADME: the README's configuration table lists every flag of the
// operator (a flag of a group such as --leader-elect-renew-deadline as `-renew-deadline`, and
// controller-runtime's logging flags as `--zap-*`), so that what an operator of taskpilot reads
// is what the binary takes.
func TestEveryFlagIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "README.md"))
	require.NoError(t, err)
	table := string(readme)
	fs := flag.NewFlagSet("taskpilot", flag.ContinueOnError)
	o, p := NewOptions(), NewProcessOptions()
	o.BindFlags(fs)
	p.BindFlags(fs)
	zopts := zap.Options{}
	zopts.BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		documented := strings.Contains(table, "`--"+f.Name+"`") ||
			strings.HasPrefix(f.Name, "zap-") && strings.Contains(table, "`--zap-*`")
		if group, rest, ok := strings.Cut(f.Name, "-elect-"); ok && group == "leader" {
			documented = documented || strings.Contains(table, "`-"+rest+"`")
		}
		if !documented {
			t.Errorf("--%s is not in the README's configuration table", f.Name)
		}
	})
}
