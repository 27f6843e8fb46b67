package membership

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/store"
)

// Verdict says whether an owner is gone.
type Verdict struct {
	// Gone: the owner stopped running tasks for good; its tasks may be claimed.
	Gone bool
	// Why explains the answer for logs and Events.
	Why string
	// RecheckAfter is when to ask again about an owner that is not gone: when its Lease would
	// expire if it is not renewed again.
	RecheckAfter time.Duration
}

// Gone tells whether owner has stopped running tasks for good. It reads the owner's Lease from
// the cache and, when the cache does not show it, from the API server; an error means the
// answer is unknown (treat as not gone).
func (m *Member) Gone(ctx context.Context, owner store.Owner) (Verdict, error) {
	if me := m.Owner(); owner == me {
		return Verdict{Why: "owned by this process", RecheckAfter: m.opts.LeaseDuration}, nil
	}
	key := client.ObjectKey{Namespace: m.opts.Namespace, Name: LeaseName(owner.Name)}
	var lease coordinationv1.Lease
	err := m.opts.Client.Get(ctx, key, &lease)
	if notFound(err) || (err == nil && epochOf(&lease) < owner.Epoch) {
		// The cache may not have seen the Lease yet: ask the API server.
		err = m.opts.APIReader.Get(ctx, key, &lease)
	}
	switch {
	case notFound(err):
		return Verdict{Gone: true, Why: fmt.Sprintf("%s (epoch %d) has no membership Lease", owner.Name, owner.Epoch)}, nil
	case err != nil:
		return Verdict{}, fmt.Errorf("read the membership Lease of %s: %w", owner.Name, err)
	}
	epoch, now := epochOf(&lease), m.opts.Clock.Now()
	switch {
	case epoch > owner.Epoch:
		return Verdict{Gone: true, Why: fmt.Sprintf("%s restarted (epoch %d, was %d)", owner.Name, epoch, owner.Epoch)}, nil
	case epoch < owner.Epoch:
		return Verdict{Why: fmt.Sprintf("%s (epoch %d) has not published its Lease yet", owner.Name, owner.Epoch),
			RecheckAfter: m.opts.RetryPeriod}, nil
	case released(&lease):
		return Verdict{Gone: true, Why: fmt.Sprintf("%s (epoch %d) released its Lease", owner.Name, owner.Epoch)}, nil
	case expired(&lease, now):
		return Verdict{Gone: true, Why: fmt.Sprintf("%s (epoch %d) stopped renewing its Lease at %s", owner.Name, owner.Epoch,
			lease.Spec.RenewTime.Format("15:04:05.000"))}, nil
	}
	return Verdict{
		Why: fmt.Sprintf("%s (epoch %d) is alive (Lease renewed at %s by %s)", owner.Name, owner.Epoch,
			lease.Spec.RenewTime.Format("15:04:05.000"), ptr.Deref(lease.Spec.HolderIdentity, "")),
		// Ask again right when the Lease expires if it is not renewed: a crashed owner's tasks
		// are taken over without waiting a whole extra lease duration.
		RecheckAfter: expiry(&lease).Sub(now) + 50*time.Millisecond,
	}, nil
}
