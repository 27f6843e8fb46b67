package membership

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/store"
)

// Join takes a fencing token and acquires this process's Lease, retrying until it succeeds or
// ctx ends. The Lease is free when it does not exist, was released, expired, or is already
// held by this identity (a restarted process of the same pod: the old one is gone).
func (m *Member) Join(ctx context.Context) (store.Owner, error) {
	log := m.opts.Log.WithValues("lease", m.name, "namespace", m.opts.Namespace)
	var epoch int64
	for {
		var err error
		if epoch == 0 {
			epoch, err = m.opts.NextEpoch(ctx)
		}
		if err == nil {
			err = m.acquire(ctx, epoch)
		}
		if err == nil {
			break
		}
		log.Info("cannot join yet; retrying", "error", err.Error(), "in", m.opts.RetryPeriod)
		select {
		case <-ctx.Done():
			return store.Owner{}, fmt.Errorf("join: %w", context.Cause(ctx))
		case <-m.opts.Clock.After(m.opts.RetryPeriod):
		}
	}
	owner := store.Owner{Name: m.opts.Identity, Epoch: epoch}
	m.owner.Store(&owner)
	close(m.joined)
	log.Info("joined as a task owner", "identity", owner.Name, "epoch", owner.Epoch)
	return owner, nil
}

// acquire creates or takes over the Lease for epoch.
func (m *Member) acquire(ctx context.Context, epoch int64) error {
	start := m.since()
	var lease coordinationv1.Lease
	err := m.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: m.opts.Namespace, Name: m.name}, &lease)
	switch {
	case notFound(err):
		lease = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: m.opts.Namespace, Name: m.name}}
		m.fill(&lease, epoch, true)
		if err := m.opts.Client.Create(ctx, &lease); err != nil {
			return fmt.Errorf("create Lease %s: %w", m.name, err)
		}
	case err != nil:
		return fmt.Errorf("read Lease %s: %w", m.name, err)
	default:
		holder := ptr.Deref(lease.Spec.HolderIdentity, "")
		if holder != "" && holder != m.opts.Identity && !expired(&lease, m.opts.Clock.Now()) {
			return fmt.Errorf("the Lease %s is held by %q, renewed at %s", m.name, holder, lease.Spec.RenewTime)
		}
		m.fill(&lease, epoch, true)
		if err := m.opts.Client.Update(ctx, &lease); err != nil {
			return fmt.Errorf("take over Lease %s: %w", m.name, err)
		}
	}
	m.mu.Lock()
	m.lease = &lease
	m.mu.Unlock()
	m.validUntil.Store(start + int64(m.opts.RenewDeadline))
	return nil
}

// fill writes this process into the Lease: holder, epoch, duration, renew time.
func (m *Member) fill(l *coordinationv1.Lease, epoch int64, acquire bool) {
	if l.Labels == nil {
		l.Labels = map[string]string{}
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Labels[LabelMember] = m.opts.Deployment
	l.Annotations[AnnotationEpoch] = strconv.FormatInt(epoch, 10)
	now := m.microNow()
	l.Spec.HolderIdentity = ptr.To(m.opts.Identity)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(min(m.opts.LeaseDuration/time.Second, math.MaxInt32))) //nolint:gosec // bounded just before
	l.Spec.RenewTime = now
	if acquire {
		l.Spec.AcquireTime = now
		l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, -1) + 1)
	}
}
