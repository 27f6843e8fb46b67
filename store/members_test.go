package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

func TestMembersLiveExpireAndRelease(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	a := Owner{Name: "pod-a", Epoch: 101}
	require.NoError(t, repo.JoinMember(ctx, a, "taskpilot", 10*time.Second))
	s, err := repo.Member(ctx, a.Epoch)
	require.NoError(t, err)
	require.True(t, s.Live())
	require.InDelta(t, 10*time.Second, s.ExpiresIn, float64(2*time.Second))

	require.NoError(t, repo.RenewMember(ctx, a.Epoch, 0))
	s, err = repo.Member(ctx, a.Epoch)
	require.NoError(t, err)
	require.False(t, s.Live(), "expired by the database's clock")
	require.True(t, s.Found)

	require.NoError(t, repo.ReleaseMember(ctx, a.Epoch))
	s, err = repo.Member(ctx, a.Epoch)
	require.NoError(t, err)
	require.True(t, s.Released)
	require.ErrorIs(t, repo.RenewMember(ctx, a.Epoch, time.Minute), ErrMemberLost, "a released member stays released")
	require.ErrorIs(t, repo.RenewMember(ctx, 999, time.Minute), ErrMemberLost)
	require.False(t, IsTransient(repo.RenewMember(ctx, 999, time.Minute)))

	s, err = repo.Member(ctx, 999)
	require.NoError(t, err)
	require.False(t, s.Found)

	// The same identity joining again ends nothing: the older process may still be running (a
	// duplicated identity, a pod recreated while the old one runs on a partitioned node); it
	// stays live until it releases its row or stops renewing it.
	old, second := Owner{Name: "pod-r", Epoch: 110}, Owner{Name: "pod-r", Epoch: 111}
	require.NoError(t, repo.JoinMember(ctx, old, "taskpilot", time.Minute))
	require.NoError(t, repo.JoinMember(ctx, second, "taskpilot", time.Minute))
	s, err = repo.Member(ctx, old.Epoch)
	require.NoError(t, err)
	require.True(t, s.Live(), "the first process of the identity keeps its membership")
	s, err = repo.Member(ctx, second.Epoch)
	require.NoError(t, err)
	require.True(t, s.Live())
}

// TestAClaimWaitsForTheOwnersRowToExpire: whatever the claimer concluded from the Kubernetes
// Lease, a task whose owner still renews its membership row in PostgreSQL is not taken: that
// owner may be running it through an API server outage.
func TestAClaimWaitsForTheOwnersRowToExpire(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	a, b := Owner{Name: "pod-a", Epoch: 201}, Owner{Name: "pod-b", Epoch: 202}
	require.NoError(t, repo.JoinMember(ctx, a, "taskpilot", time.Minute))
	_, _, err := repo.CreateTask(ctx, NewTask{UID: "t1", Namespace: "ns", Name: "t1", TaskName: "noop",
		Desired: lifecycle.DesiredRunning, Owner: a, At: time.Now()})
	require.NoError(t, err)

	_, err = repo.Claim(ctx, "t1", b, a.Epoch)
	var owned *OwnedError
	require.ErrorAs(t, err, &owned, "a's row is live")
	require.Equal(t, a, owned.Owner)

	require.NoError(t, repo.RenewMember(ctx, a.Epoch, 0)) // a stopped renewing: expired now
	row, err := repo.Claim(ctx, "t1", b, a.Epoch)
	require.NoError(t, err)
	require.Equal(t, b.Epoch, *row.OwnerEpoch)

	// An owner without a membership row (an operator version without taskpilot_members) is
	// judged by its Lease alone.
	_, _, err = repo.CreateTask(ctx, NewTask{UID: "t2", Namespace: "ns", Name: "t2", TaskName: "noop",
		Desired: lifecycle.DesiredRunning, Owner: Owner{Name: "old", Epoch: 7}, At: time.Now()})
	require.NoError(t, err)
	_, err = repo.Claim(ctx, "t2", b, 7)
	require.NoError(t, err)

	// A released owner's tasks are free at once.
	c := Owner{Name: "pod-c", Epoch: 203}
	require.NoError(t, repo.JoinMember(ctx, c, "taskpilot", time.Minute))
	_, _, err = repo.CreateTask(ctx, NewTask{UID: "t3", Namespace: "ns", Name: "t3", TaskName: "noop",
		Desired: lifecycle.DesiredRunning, Owner: c, At: time.Now()})
	require.NoError(t, err)
	require.NoError(t, repo.ReleaseMember(ctx, c.Epoch))
	_, err = repo.Claim(ctx, "t3", b, c.Epoch)
	require.NoError(t, err)
}

// TestLiveMembersByTheDatabasesAccount: the sharder's view of who may run tasks by PostgreSQL:
// one deployment's identities with a live row, each once.
func TestLiveMembersByTheDatabasesAccount(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	for _, m := range []struct {
		o          Owner
		deployment string
	}{
		{Owner{Name: "pod-a", Epoch: 301}, "taskpilot"},
		{Owner{Name: "pod-b", Epoch: 302}, "taskpilot"},
		{Owner{Name: "pod-c", Epoch: 303}, "taskpilot"},
		{Owner{Name: "pod-x", Epoch: 304}, "other"},
		{Owner{Name: "pod-a", Epoch: 305}, "taskpilot"}, // pod-a's container restarted
	} {
		require.NoError(t, repo.JoinMember(ctx, m.o, m.deployment, time.Minute))
	}
	require.NoError(t, repo.RenewMember(ctx, 302, 0)) // pod-b stopped renewing
	require.NoError(t, repo.ReleaseMember(ctx, 303))  // pod-c shut down
	live, err := repo.LiveMembers(ctx, "taskpilot")
	require.NoError(t, err)
	require.Equal(t, []string{"pod-a"}, live)
}

// TestAGoneOwnersTasksAreClaimedInOneStatement: ClaimFrom takes every listed task of a gone
// owner at once, only once its membership row is not live, and nothing else.
func TestAGoneOwnersTasksAreClaimedInOneStatement(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	a, b, c := Owner{Name: "pod-a", Epoch: 401}, Owner{Name: "pod-b", Epoch: 402}, Owner{Name: "pod-c", Epoch: 403}
	require.NoError(t, repo.JoinMember(ctx, a, "taskpilot", time.Minute))
	var uids []string
	for i, o := range []Owner{a, a, a, c} {
		uid := fmt.Sprintf("cf-%d", i)
		_, _, err := repo.CreateTask(ctx, NewTask{UID: uid, Namespace: "ns", Name: uid, TaskName: "noop",
			Desired: lifecycle.DesiredRunning, Owner: o, At: time.Now()})
		require.NoError(t, err)
		uids = append(uids, uid)
	}
	rows, err := repo.ClaimFrom(ctx, a.Epoch, b, uids)
	require.NoError(t, err)
	require.Empty(t, rows, "a's row is live")

	require.NoError(t, repo.RenewMember(ctx, a.Epoch, 0)) // a stopped renewing
	rows, err = repo.ClaimFrom(ctx, a.Epoch, b, uids[1:])
	require.NoError(t, err)
	require.Len(t, rows, 2, "the listed tasks of a, not c's")
	for _, r := range rows {
		require.Equal(t, b.Epoch, *r.OwnerEpoch)
	}
	row, err := repo.GetTask(ctx, uids[0])
	require.NoError(t, err)
	require.Equal(t, a.Epoch, *row.OwnerEpoch, "an unlisted task stays")
	rows, err = repo.ClaimFrom(ctx, a.Epoch, c, uids)
	require.NoError(t, err)
	require.Len(t, rows, 1, "only what a still holds: the other claimer took the rest")

	owners, err := repo.OwnersOf(ctx, "pod-b")
	require.NoError(t, err)
	require.Equal(t, []Owner{b}, owners)
}
