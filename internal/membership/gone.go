package membership

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/store"
)

// Gone reports whether owner has stopped running tasks for good, so that its tasks may be
// claimed, and explains the answer for logs and Events. It reads the owner's Lease from the
// cache and, when the cache does not show it, from the API server; an error means the answer
// is unknown (treat as not gone).
func (m *Member) Gone(ctx context.Context, owner store.Owner) (bool, string, error) {
	if me := m.Owner(); owner == me {
		return false, "owned by this process", nil
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
		return true, fmt.Sprintf("%s (epoch %d) has no membership Lease", owner.Name, owner.Epoch), nil
	case err != nil:
		return false, "", fmt.Errorf("read the membership Lease of %s: %w", owner.Name, err)
	}
	epoch := epochOf(&lease)
	switch {
	case epoch > owner.Epoch:
		return true, fmt.Sprintf("%s restarted (epoch %d, was %d)", owner.Name, epoch, owner.Epoch), nil
	case epoch < owner.Epoch:
		return false, fmt.Sprintf("%s (epoch %d) has not published its Lease yet", owner.Name, owner.Epoch), nil
	case released(&lease):
		return true, fmt.Sprintf("%s (epoch %d) released its Lease", owner.Name, owner.Epoch), nil
	case expired(&lease, m.opts.Clock.Now()):
		return true, fmt.Sprintf("%s (epoch %d) stopped renewing its Lease at %s", owner.Name, owner.Epoch, lease.Spec.RenewTime.Format("15:04:05.000")), nil
	}
	return false, fmt.Sprintf("%s (epoch %d) is alive (Lease renewed at %s by %s)", owner.Name, owner.Epoch,
		lease.Spec.RenewTime.Format("15:04:05.000"), ptr.Deref(lease.Spec.HolderIdentity, "")), nil
}
