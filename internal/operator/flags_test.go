package operator

import (
	"flag"
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
	cfg, _, err := parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), []string{"--max-concurrent-tasks=7"})
	require.NoError(t, err)
	require.Equal(t, "postgres://x@y/z", cfg.databaseURL, "--database-url defaults to $DATABASE_URL")
	require.Equal(t, 7, cfg.maxConcurrentTasks)
	require.False(t, cfg.leaderElect, "off for local runs; the Deployment turns it on")
	require.Equal(t, 10*time.Second, cfg.progressInterval)

	_, _, err = parseFlags(flag.NewFlagSet("taskpilot", flag.ContinueOnError), []string{"--kubeconfig=/dev/null"})
	require.NoError(t, err, "--kubeconfig is accepted (make dev passes it)")
}
