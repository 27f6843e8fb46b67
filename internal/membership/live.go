package membership

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
)

// Live returns the identities of deployment's members whose Lease is held and not expired by
// obs's account (the replicas that may run tasks), and how long until that answer changes at
// the latest without another write to a Lease: the shortest time left among them (zero when
// none is live). Leases of other deployments, or without the member label, are ignored.
func Live(leases []coordinationv1.Lease, deployment string, obs *Observer) (members []string, changesIn time.Duration) {
	for i := range leases {
		l := &leases[i]
		if l.Labels[LabelMember] != deployment || released(l) {
			continue
		}
		left := obs.Left(l)
		if left <= 0 {
			continue
		}
		members = append(members, ptr.Deref(l.Spec.HolderIdentity, ""))
		if changesIn == 0 || left < changesIn {
			changesIn = left
		}
	}
	return members, changesIn
}
