package membership_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/taskpilot/taskpilot/internal/membership"
)

func TestLive(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	lease := func(holder string, renewedAgo time.Duration, deployment string) coordinationv1.Lease {
		l := coordinationv1.Lease{}
		if deployment != "" {
			l.Labels = map[string]string{membership.LabelMember: deployment}
		}
		l.Spec.HolderIdentity = ptr.To(holder)
		l.Spec.LeaseDurationSeconds = ptr.To(int32(15))
		l.Spec.RenewTime = &metav1.MicroTime{Time: now.Add(-renewedAgo)}
		return l
	}
	members, changesAt := membership.Live([]coordinationv1.Lease{
		lease("a", time.Second, "tp"),
		lease("b", 10*time.Second, "tp"),
		lease("dead", 16*time.Second, "tp"),
		lease("", time.Second, "tp"), // released
		lease("leader", time.Second, ""),
		lease("other-team", time.Second, "reports"), // another deployment's replica
	}, "tp", now)
	require.Equal(t, []string{"a", "b"}, members)
	require.Equal(t, now.Add(5*time.Second), changesAt, "b expires first")
	members, changesAt = membership.Live(nil, "tp", now)
	require.Empty(t, members)
	require.True(t, changesAt.IsZero())
}
