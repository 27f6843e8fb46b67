package operator_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner/builtin"
	"github.com/taskpilot/taskpilot/store"
)

// TestARoleWithoutPrivilegesSaysWhichItLacks: an operator started with a role that is not a
// member of taskpilot_runtime (here the read-only one, as `source bin/dev/env` exports it) is
// not told "PostgreSQL does not answer": /readyz/startup and /readyz/database name the role,
// what it lacks and the grant that mends it, taskpilot_database_missing_privileges counts it,
// and once the grant is made the operator joins without a restart.
func TestARoleWithoutPrivilegesSaysWhichItLacks(t *testing.T) {
	w := newWorld(t)
	require.NoError(t, store.MigrateURL(w.ctx, w.dbURL, logr.Discard()))
	role := "reader_" + strings.ToLower(rand.String(6))
	admin, err := pgx.Connect(w.ctx, w.dbURL)
	require.NoError(t, err)
	defer func() { _ = admin.Close(w.ctx) }()
	_, err = admin.Exec(w.ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'secret' IN ROLE %s`, role, store.ReadOnlyRole))
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(w.ctx, fmt.Sprintf(`DROP OWNED BY %[1]s; DROP ROLE %[1]s`, role)) })
	u, err := url.Parse(w.dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword(role, "secret")

	reg := prometheus.NewRegistry()
	op := w.startWith("readonly", builtin.Register, reg, func(o *operator.Options) {
		o.DatabaseURL, o.MigrateDatabaseURL = u.String(), w.dbURL
	})
	checks := op.ReadyChecks()
	req, err := http.NewRequestWithContext(w.ctx, http.MethodGet, "/readyz", nil)
	require.NoError(t, err)
	var startup error
	require.Eventually(t, func() bool {
		startup = checks["startup"](req)
		return startup != nil && strings.Contains(startup.Error(), "lacks privileges")
	}, waitTimeout, 50*time.Millisecond, "startup says why: %v", startup)
	for _, err := range []error{startup, checks["database"](req)} {
		require.ErrorContains(t, err, fmt.Sprintf("PostgreSQL role %q lacks privileges", role))
		require.ErrorContains(t, err, "INSERT on table background_tasks")
		require.ErrorContains(t, err, fmt.Sprintf("GRANT taskpilot_runtime TO %q", role))
	}
	require.Positive(t, gauge(t, reg, "taskpilot_database_missing_privileges"))

	_, err = admin.Exec(w.ctx, fmt.Sprintf(`GRANT %s TO %s`, store.RuntimeRole, role))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return checks["startup"](req) == nil && checks["database"](req) == nil },
		waitTimeout, 100*time.Millisecond, "the grant mends it without a restart")
	require.Zero(t, gauge(t, reg, "taskpilot_database_missing_privileges"))
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
