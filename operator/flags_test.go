package operator

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
	cfg, _, err := parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), []string{"--max-concurrent-tasks=7", "--kubeconfig=/tmp/kc"})
	require.NoError(t, err)
	require.Equal(t, "postgres://x@y/z", cfg.DatabaseURL, "--database-url defaults to $DATABASE_URL")
	require.Equal(t, 7, cfg.MaxConcurrentTasks)
	require.Equal(t, "/tmp/kc", cfg.Kubeconfig)
	require.False(t, cfg.LeaderElect, "off for local runs; the Deployment turns it on")
	require.Equal(t, 10*time.Second, cfg.ProgressUpdateInterval)
	require.Equal(t, "taskpilot", cfg.Deployment, "one deployment needs no name")

	_, _, err = parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), []string{"--kubeconfig=/dev/null"})
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
		_, _, err := parseFlags(fs, args)
		require.Error(t, err, "%v", args)
		require.Contains(t, out.String(), "-database-url", "the usage text was printed")
		require.NotContains(t, out.String(), "s3cr3t", "%v printed the password", args)
	}
}

func TestIdentityAndNamespaceDefaults(t *testing.T) {
	t.Setenv("POD_NAME", "taskpilot-7d9f-abcde")
	t.Setenv("POD_NAMESPACE", "taskpilot-system")
	t.Setenv("DATABASE_URL", "postgres://x@y/z")
	cfg, _, err := parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), nil)
	require.NoError(t, err)
	require.Equal(t, "taskpilot-7d9f-abcde", cfg.Identity, "the pod name is unique among replicas")
	require.Equal(t, "taskpilot-system", cfg.Namespace)
}

func TestMemoryBudget(t *testing.T) {
	for flag, want := range map[string]int64{"400Mi": 400 << 20, "0": 0, "1G": 1_000_000_000} {
		got, err := memoryBudget(flag)
		require.NoError(t, err, flag)
		require.Equal(t, want, got, flag)
	}
	_, err := memoryBudget("lots")
	require.Error(t, err)

	t.Setenv("GOMEMLIMIT", "1073741824") // the Deployment's limits.memory, 1Gi
	got, err := memoryBudget("auto")
	require.NoError(t, err)
	limit := int64(1 << 30)
	require.Equal(t, int64(float64(limit)*0.6), got)
	t.Setenv("GOMEMLIMIT", "512MiB")
	got, _ = memoryBudget("auto")
	limit = 512 << 20
	require.Equal(t, int64(float64(limit)*0.6), got)
	require.Zero(t, parseLimit("max"), "cgroup without a limit")
}
