package membership

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Run renews the Lease every retry period until ctx ends, then releases it (call it only once
// this process stopped running tasks), and returns nil. It returns ErrLost as soon as the
// member is no longer valid: a renewal did not succeed within the renew deadline, or the Lease
// was taken by someone else.
func (m *Member) Run(ctx context.Context) error {
	log := m.opts.Log.WithValues("lease", m.name, "epoch", m.Owner().Epoch)
	ticker := m.opts.Clock.NewTicker(m.opts.RetryPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
		if !m.Valid() {
			log.Error(ErrLost, "the Lease was not renewed within the renew deadline; stopping every task", "renewDeadline", m.opts.RenewDeadline)
			return ErrLost
		}
		if err := m.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Info("cannot renew the membership Lease; retrying", "error", err.Error())
			if errors.Is(err, ErrLost) {
				return ErrLost
			}
		}
	}
}

// renew writes a new renew time; the validity grows from the time the attempt started. An
// attempt may take as long as the member stays valid: on a loaded API server a slow renewal
// that succeeds in time keeps the member, where a short timeout would give it up needlessly.
func (m *Member) renew(ctx context.Context) error {
	start := m.since()
	ctx, cancel := context.WithTimeout(ctx, max(time.Duration(m.validUntil.Load()-start), m.opts.RetryPeriod))
	defer cancel()
	m.mu.Lock()
	lease := m.lease.DeepCopy()
	m.mu.Unlock()
	m.fill(lease, m.Owner().Epoch, false)
	if err := m.opts.Client.Update(ctx, lease); err != nil {
		// A conflict means someone else wrote our Lease: read it to see whether it is still ours.
		fresh := lease.DeepCopy()
		if gerr := m.opts.APIReader.Get(ctx, client.ObjectKeyFromObject(lease), fresh); gerr == nil {
			if ptr.Deref(fresh.Spec.HolderIdentity, "") != m.opts.Identity || epochOf(fresh) != m.Owner().Epoch {
				m.lost.Store(true)
				return ErrLost
			}
			m.mu.Lock()
			m.lease = fresh
			m.mu.Unlock()
		}
		return fmt.Errorf("renew Lease %s: %w", m.name, err)
	}
	m.mu.Lock()
	m.lease = lease
	m.mu.Unlock()
	m.extend(start)
	return nil
}

// Release gives the Lease up so that other processes may take this one's tasks at once. Call
// it after every run stopped; it is best effort (an unreleased Lease expires).
func (m *Member) Release(ctx context.Context) error {
	if m.Owner().Epoch == 0 || !m.Valid() {
		return nil
	}
	m.lost.Store(true) // from now on this process runs nothing
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.RenewDeadline)
	defer cancel()
	m.mu.Lock()
	lease := m.lease.DeepCopy()
	m.mu.Unlock()
	lease.Spec.HolderIdentity = ptr.To("")
	lease.Spec.RenewTime = m.microNow()
	if err := m.opts.Client.Update(ctx, lease); err != nil {
		return fmt.Errorf("release Lease %s: %w", m.name, err)
	}
	m.opts.Log.Info("released the membership Lease", "lease", m.name, "after", time.Duration(m.since()))
	return nil
}
