package membership

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/store"
)

// Verdict says whether an owner is gone.
type Verdict struct {
	// Gone: the owner stopped running tasks for good; its tasks may be claimed.
	Gone bool
	// Why explains the answer for logs and Events.
	Why string
	// RecheckAfter is when to ask again about an owner that is not gone: when its membership
	// would expire if it is not renewed again.
	RecheckAfter time.Duration
}

// recheckSlack is added to a recheck so that it falls just after the expiry it waits for.
const recheckSlack = 50 * time.Millisecond

// Gone tells whether owner has stopped running tasks for good: its membership ended in both
// backends, the Kubernetes Lease (released, expired by this process's observation and
// confirmed by an uncached read, or carrying a newer epoch of the same identity) and the
// PostgreSQL row (released, expired by the database's clock, or never written). An owner that
// still renews either may be running tasks through an outage of the other. An error means the
// answer is unknown (treat as not gone). store.Claim checks the row again in the same statement
// that takes a task.
func (m *Member) Gone(ctx context.Context, owner store.Owner) (Verdict, error) {
	if me := m.Owner(); owner == me {
		return Verdict{Why: "owned by this process", RecheckAfter: m.opts.LeaseDuration}, nil
	}
	api, err := m.leaseGone(ctx, owner)
	if err != nil || !api.Gone {
		return api, err
	}
	row, err := m.opts.Roll.Member(ctx, owner.Epoch)
	if err != nil {
		return Verdict{}, fmt.Errorf("read the membership row of %s (epoch %d): %w", owner.Name, owner.Epoch, err)
	}
	if row.Live() {
		return Verdict{
			Why: fmt.Sprintf("%s; but it renews its membership row in PostgreSQL (expires in %s): it may be running tasks through an API server outage",
				api.Why, row.ExpiresIn.Round(time.Millisecond)),
			RecheckAfter: row.ExpiresIn + recheckSlack,
		}, nil
	}
	switch {
	case row.Released:
		api.Why += ", and released its membership row"
	case row.Found:
		api.Why += ", and its membership row expired"
	default:
		api.Why += ", and has no membership row"
	}
	return api, nil
}

// leaseGone is the Kubernetes side of Gone.
func (m *Member) leaseGone(ctx context.Context, owner store.Owner) (Verdict, error) {
	key := client.ObjectKey{Namespace: m.opts.Namespace, Name: LeaseName(owner.Name)}
	var lease coordinationv1.Lease
	err := m.opts.Client.Get(ctx, key, &lease)
	if notFound(err) || (err == nil && epochOf(&lease) < owner.Epoch) {
		// The cache may not have seen the Lease yet: ask the API server.
		err = m.opts.APIReader.Get(ctx, key, &lease)
	}
	switch {
	case notFound(err):
		m.observer.Forget(key.Namespace, key.Name)
		return Verdict{Gone: true, Why: fmt.Sprintf("%s (epoch %d) has no membership Lease", owner.Name, owner.Epoch)}, nil
	case err != nil:
		return Verdict{}, fmt.Errorf("read the membership Lease of %s: %w", owner.Name, err)
	}
	epoch := epochOf(&lease)
	switch {
	case epoch > owner.Epoch:
		return Verdict{Gone: true, Why: fmt.Sprintf("%s restarted (epoch %d, was %d)", owner.Name, epoch, owner.Epoch)}, nil
	case epoch < owner.Epoch:
		// It joined through PostgreSQL and has not reached the API server yet: the row decides.
		return Verdict{Gone: true, Why: fmt.Sprintf("%s (epoch %d) has not published its Lease", owner.Name, owner.Epoch)}, nil
	case released(&lease):
		return Verdict{Gone: true, Why: fmt.Sprintf("%s (epoch %d) released its Lease", owner.Name, owner.Epoch)}, nil
	}
	left := m.observer.Left(&lease)
	if left <= 0 {
		// The cache may lag behind a renewal: only the API server itself can confirm.
		if err := m.opts.APIReader.Get(ctx, key, &lease); err != nil {
			return Verdict{}, fmt.Errorf("confirm that the membership Lease of %s expired: %w", owner.Name, err)
		}
		if left = m.observer.Left(&lease); left <= 0 || released(&lease) {
			return Verdict{Gone: true, Why: fmt.Sprintf("%s (epoch %d) was not seen renewing its Lease for %s", owner.Name, owner.Epoch,
				leaseDuration(&lease))}, nil
		}
	}
	return Verdict{
		Why: fmt.Sprintf("%s (epoch %d) renews its Lease (seen %s ago)", owner.Name, owner.Epoch,
			(leaseDuration(&lease) - left).Round(time.Millisecond)),
		// Ask again right when the Lease would expire if it is not renewed: a crashed owner's
		// tasks are taken over without waiting a whole extra lease duration.
		RecheckAfter: left + recheckSlack,
	}, nil
}
