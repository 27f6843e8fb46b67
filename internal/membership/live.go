package membership

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
)

// Live returns the identities of deployment's members whose Lease is held and not expired at
// now (the replicas that may run tasks), and when that answer changes at the latest without
// another write to a Lease: the earliest expiry among them (zero when none is live). Leases
// of other deployments, or without the member label, are ignored.
func Live(leases []coordinationv1.Lease, deployment string, now time.Time) (members []string, changesAt time.Time) {
	for i := range leases {
		l := &leases[i]
		if l.Labels[LabelMember] != deployment || released(l) || expired(l, now) {
			continue
		}
		members = append(members, ptr.Deref(l.Spec.HolderIdentity, ""))
		if exp := expiry(l); changesAt.IsZero() || exp.Before(changesAt) {
			changesAt = exp
		}
	}
	return members, changesAt
}
