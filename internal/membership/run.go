package membership

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/store"
)

// Run renews the membership until ctx ends, and returns nil: the Kubernetes Lease and the
// PostgreSQL row, each every retry period and each on its own, so that a backend that does not
// answer never delays the other. Call Release afterwards, once this process stopped running
// tasks. Run returns ErrLost as soon as the member is no longer valid: neither backend was
// renewed within the renew deadline, or either was taken (the Lease by another process, the
// row released).
func (m *Member) Run(ctx context.Context) error {
	log := m.opts.Log.WithValues("lease", m.name, "epoch", m.Owner().Epoch)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go m.keepRenewing(ctx, cancel, "the membership Lease", m.renewLease)
	go m.keepRenewing(ctx, cancel, "the membership row", m.renewRow)

	ticker := m.opts.Clock.NewTicker(m.opts.RetryPeriod / 4)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); errors.Is(cause, ErrLost) {
				log.Error(cause, "the membership was taken; stopping every task")
				return ErrLost
			}
			return nil
		case <-ticker.C():
		}
		if !m.Valid() {
			api, db := m.Backends()
			log.Error(ErrLost, "neither the Lease nor the row was renewed within the renew deadline; stopping every task",
				"renewDeadline", m.opts.RenewDeadline, "leaseRenewedAgo", api.Since, "rowRenewedAgo", db.Since)
			return ErrLost
		}
	}
}

// keepRenewing calls renew every retry period until ctx ends, logging when a backend stops and
// starts answering again; a renewal that finds the membership taken ends Run.
func (m *Member) keepRenewing(ctx context.Context, cancel context.CancelCauseFunc, what string, renew func(context.Context) error) {
	log := m.opts.Log.WithValues("lease", m.name, "epoch", m.Owner().Epoch)
	ticker := m.opts.Clock.NewTicker(m.opts.RetryPeriod)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
		if m.lost.Load() {
			return
		}
		err := renew(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLost):
			cancel(fmt.Errorf("%s: %w", what, err))
			return
		case err != nil && !failing:
			failing = true
			log.Info("cannot renew "+what+"; the other backend keeps the membership valid meanwhile", "error", err.Error())
		case err == nil && failing:
			failing = false
			log.Info("renewed " + what + " again")
		}
	}
}

// renewLease writes a new renew time into the Lease, acquiring it first if the API server did
// not answer at Join; the validity grows from the time the attempt started. An attempt may take
// as long as the member stays valid: on a loaded API server a slow renewal that succeeds in
// time keeps the member, where a short timeout would give it up needlessly.
func (m *Member) renewLease(ctx context.Context) error {
	start := m.since()
	ctx, cancel := context.WithTimeout(ctx, max(time.Duration(m.validUntil.Load()-start), m.opts.RetryPeriod))
	defer cancel()
	m.mu.Lock()
	lease := m.lease.DeepCopy()
	m.mu.Unlock()
	if lease == nil {
		return m.acquire(ctx, m.Owner().Epoch)
	}
	m.fill(lease, m.Owner().Epoch, false)
	if err := m.opts.Client.Update(ctx, lease); err != nil {
		// A conflict means someone else wrote our Lease (or deleted it): read it to see
		// whether it is still ours.
		fresh := lease.DeepCopy()
		gerr := m.opts.APIReader.Get(ctx, client.ObjectKeyFromObject(lease), fresh)
		if notFound(err) || notFound(gerr) {
			// Someone deleted the Lease: make it again, at once (takers count a missing Lease
			// as gone only after the lease duration).
			m.mu.Lock()
			m.lease = nil
			m.mu.Unlock()
			return m.acquire(ctx, m.Owner().Epoch)
		}
		if gerr == nil {
			if ptr.Deref(fresh.Spec.HolderIdentity, "") != m.opts.Identity || epochOf(fresh) != m.Owner().Epoch {
				m.lost.Store(true)
				return fmt.Errorf("%s holds it now (epoch %d): %w", ptr.Deref(fresh.Spec.HolderIdentity, ""), epochOf(fresh), ErrLost)
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
	m.apiRenewed.Store(max(start, 1))
	m.extend(start)
	return nil
}

// renewRow extends the PostgreSQL row by the lease duration from the database's now().
func (m *Member) renewRow(ctx context.Context) error {
	start := m.since()
	ctx, cancel := context.WithTimeout(ctx, max(time.Duration(m.validUntil.Load()-start), m.opts.RetryPeriod))
	defer cancel()
	if err := m.opts.Roll.RenewMember(ctx, m.Owner().Epoch, m.opts.LeaseDuration); err != nil {
		if errors.Is(err, store.ErrMemberLost) {
			m.lost.Store(true)
			return fmt.Errorf("%w: %w", ErrLost, err)
		}
		return err
	}
	m.dbRenewed.Store(max(start, 1))
	m.extend(start)
	return nil
}

// Release gives the membership up, the Lease and the row, so that other processes may take
// this one's tasks at once. Call it after every run stopped; it is best effort (both expire).
func (m *Member) Release(ctx context.Context) error {
	if m.Owner().Epoch == 0 || !m.Valid() {
		return nil
	}
	m.lost.Store(true) // from now on this process runs nothing
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.RenewDeadline)
	defer cancel()
	rowErr := m.opts.Roll.ReleaseMember(ctx, m.Owner().Epoch)
	m.mu.Lock()
	lease := m.lease.DeepCopy()
	m.mu.Unlock()
	var leaseErr error
	if lease != nil {
		lease.Spec.HolderIdentity = ptr.To("")
		lease.Spec.RenewTime = m.microNow()
		if err := m.opts.Client.Update(ctx, lease); err != nil {
			leaseErr = fmt.Errorf("release Lease %s: %w", m.name, err)
		}
	}
	if err := errors.Join(rowErr, leaseErr); err != nil {
		return err
	}
	m.opts.Log.Info("released the membership", "lease", m.name, "after", time.Duration(m.since()))
	return nil
}
