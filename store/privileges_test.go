package store

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAMissingPrivilegeIsNamed: a role that is not a member of taskpilot_runtime (here the
// read-only one, as a developer's shell has it) lacks what the operator needs, and both the
// check and the error of a refused statement say which role lacks what, and how to grant it;
// the runtime role lacks nothing.
func TestAMissingPrivilegeIsNamed(t *testing.T) {
	ownerURL := srv.NewDatabase(t)
	_ = openRepo(t, ownerURL, Config{}) // the owner migrates
	ctx := testCtx(t)

	runtime := openRepo(t, loginAs(t, ownerURL, RuntimeRole), Config{MigrateURL: ownerURL})
	missing, err := runtime.MissingPrivileges(ctx)
	require.NoError(t, err)
	require.Empty(t, missing, "the runtime role has what the operator needs")

	readerURL := loginAs(t, ownerURL, ReadOnlyRole)
	reader := openRepo(t, readerURL, Config{MigrateURL: ownerURL})
	u, err := url.Parse(readerURL)
	require.NoError(t, err)
	role := u.User.Username()
	missing, err = reader.MissingPrivileges(ctx)
	require.NoError(t, err)
	require.Contains(t, missing, MissingPrivilege{Role: role, Kind: "sequence", Object: "taskpilot_owner_epoch", Privilege: "USAGE"})
	require.Contains(t, missing, MissingPrivilege{Role: role, Kind: "table", Object: "background_tasks", Privilege: "INSERT"})
	require.NotContains(t, missing, MissingPrivilege{Role: role, Kind: "table", Object: "background_tasks", Privilege: "SELECT"})

	_, err = reader.NextEpoch(ctx)
	require.Error(t, err)
	why, ok := reader.PrivilegeError(err)
	require.True(t, ok, "a refused privilege is not an outage: %v", err)
	require.Contains(t, why, `role "`+role+`"`)
	require.Contains(t, why, "permission denied for sequence taskpilot_owner_epoch")
	require.Contains(t, why, "GRANT taskpilot_runtime TO")
	_, ok = reader.PrivilegeError(errAnOutage{})
	require.False(t, ok)
}

type errAnOutage struct{}

func (errAnOutage) Error() string { return "dial tcp 127.0.0.1:5432: connect: connection refused" }
