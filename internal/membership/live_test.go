package membership_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/taskpilot/taskpilot/internal/membership"
)

func lease(name, holder, rv, deployment string, renewTime time.Time) coordinationv1.Lease {
	l := coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
	if deployment != "" {
		l.Labels = map[string]string{membership.LabelMember: deployment}
	}
	l.Spec.HolderIdentity = ptr.To(holder)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(15))
	l.Spec.RenewTime = &metav1.MicroTime{Time: renewTime}
	return l
}

func TestLive(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	obs := membership.NewObserver(clk)
	leases := []coordinationv1.Lease{
		lease("a", "a", "1", "tp", now),
		lease("b", "b", "2", "tp", now),
		lease("released", "", "3", "tp", now),
		lease("leader", "leader", "4", "", now),
		lease("other-team", "other-team", "5", "reports", now), // another deployment's replica
	}
	members, changesIn := membership.Live(leases, "tp", obs)
	require.Equal(t, []string{"a", "b"}, members, "first seen: live for a lease duration from now")
	require.Equal(t, 15*time.Second, changesIn)

	clk.Step(10 * time.Second)
	leases[0].ResourceVersion, leases[0].Spec.RenewTime = "6", &metav1.MicroTime{Time: now.Add(10 * time.Second)} // a renews
	members, changesIn = membership.Live(leases, "tp", obs)
	require.Equal(t, []string{"a", "b"}, members)
	require.Equal(t, 5*time.Second, changesIn, "b's time runs out first")

	clk.Step(5 * time.Second)
	members, changesIn = membership.Live(leases, "tp", obs)
	require.Equal(t, []string{"a"}, members, "b was not seen renewing for 15 s")
	require.Equal(t, 10*time.Second, changesIn)

	members, changesIn = membership.Live(nil, "tp", obs)
	require.Empty(t, members)
	require.Zero(t, changesIn)
}

// TestExpiryIsJudgedByObservation: a holder whose clock runs behind (its renewTime far in the
// past by the observer's clock) is alive while the observer sees its Lease change; one whose
// renewTime is in the future is not kept alive by it (so a node whose clock runs ahead does not
// claim a live owner's tasks).
func TestExpiryIsJudgedByObservation(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	obs := membership.NewObserver(clk)
	behind := lease("behind", "behind", "1", "tp", now.Add(-time.Hour))
	require.Equal(t, 15*time.Second, obs.Left(&behind), "an hour-old renewTime does not make it expired")
	clk.Step(14 * time.Second)
	behind.ResourceVersion, behind.Spec.RenewTime = "2", &metav1.MicroTime{Time: now.Add(-time.Hour + 14*time.Second)}
	require.Equal(t, 15*time.Second, obs.Left(&behind), "it renewed: a new record seen now")

	ahead := lease("ahead", "ahead", "3", "tp", now.Add(time.Hour))
	require.Equal(t, 15*time.Second, obs.Left(&ahead))
	clk.Step(15 * time.Second)
	require.LessOrEqual(t, obs.Left(&ahead), time.Duration(0), "not renewed for 15 s: expired, whatever its renewTime says")
}
