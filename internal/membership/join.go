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

// Join takes a fencing token and records this process as a live member in PostgreSQL,
// retrying until it succeeds or ctx ends; from then on the member is valid. It also tries once
// to acquire its Kubernetes Lease; Run keeps trying if the API server does not answer now.
// PostgreSQL is needed to join (the token and the claims of tasks live there), the API server
// is not.
func (m *Member) Join(ctx context.Context) (store.Owner, error) {
	log := m.opts.Log.WithValues("lease", m.name, "namespace", m.opts.Namespace)
	var epoch int64
	backoff := m.opts.RetryPeriod
	for {
		start := m.since()
		var err error
		if epoch == 0 {
			epoch, err = m.opts.Roll.NextEpoch(ctx)
		}
		if err == nil {
			err = m.opts.Roll.JoinMember(ctx, store.Owner{Name: m.opts.Identity, Epoch: epoch}, m.opts.Deployment, m.opts.LeaseDuration)
		}
		if err == nil {
			m.validUntil.Store(start + int64(m.opts.RenewDeadline))
			m.dbRenewed.Store(max(start, 1))
			break
		}
		log.Info("cannot join yet (PostgreSQL does not answer, or refuses); retrying", "error", err.Error(), "in", backoff)
		select {
		case <-ctx.Done():
			return store.Owner{}, fmt.Errorf("join: %w", context.Cause(ctx))
		case <-m.opts.Clock.After(backoff):
		}
		backoff = min(2*backoff, joinBackoffCap)
	}
	owner := store.Owner{Name: m.opts.Identity, Epoch: epoch}
	m.owner.Store(&owner)
	close(m.joined)
	if err := m.acquire(ctx, epoch); err != nil {
		log.Info("joined without the membership Lease for now; the row keeps the membership meanwhile, retrying", "error", err.Error())
	}
	log.Info("joined as a task owner", "identity", owner.Name, "epoch", owner.Epoch)
	return owner, nil
}

// joinBackoffCap bounds the wait between two attempts to join.
const joinBackoffCap = 10 * time.Second

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
		predecessor, err := m.mayTake(&lease, epoch)
		if err != nil {
			return err
		}
		m.fill(&lease, epoch, true)
		if err := m.opts.Client.Update(ctx, &lease); err != nil {
			return fmt.Errorf("take over Lease %s: %w", m.name, err)
		}
		if predecessor != 0 {
			// The same pod's previous container has exited: its row need not expire first.
			if err := m.opts.Roll.ReleaseMember(ctx, predecessor); err != nil {
				m.opts.Log.Info("could not release the previous process's membership row; it expires by itself",
					"epoch", predecessor, "error", err.Error())
			}
		}
	}
	m.mu.Lock()
	m.lease = &lease
	m.mu.Unlock()
	m.apiRenewed.Store(max(start, 1))
	m.extend(start)
	return nil
}

// mayTake says whether this process may take the existing Lease for epoch: when it is
// released, its own already, held by the same pod's previous container (the same
// incarnation: that process has exited, and predecessor is its epoch), or expired by this
// process's observation. A live holder of the same identity is waited for like any other:
// two processes with one identity must never both count as its owner.
func (m *Member) mayTake(l *coordinationv1.Lease, epoch int64) (predecessor int64, err error) {
	holder := ptr.Deref(l.Spec.HolderIdentity, "")
	switch {
	case holder == "":
		return 0, nil
	case holder == m.opts.Identity && epochOf(l) == epoch:
		return 0, nil
	case holder == m.opts.Identity && m.opts.Incarnation != "" && l.Annotations[AnnotationIncarnation] == m.opts.Incarnation:
		return epochOf(l), nil
	}
	if left := m.observer.Left(l); left > 0 {
		why := "another process"
		if holder == m.opts.Identity {
			why = "another process with this identity (a duplicated --identity, or the pod's previous incarnation still running)"
		}
		return 0, fmt.Errorf("the Lease %s is held by %s (%q, epoch %d): waiting %s for it to expire unless renewed",
			m.name, why, holder, epochOf(l), left.Round(time.Millisecond))
	}
	return 0, nil
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
	if m.opts.Incarnation != "" {
		l.Annotations[AnnotationIncarnation] = m.opts.Incarnation
	} else {
		delete(l.Annotations, AnnotationIncarnation)
	}
	now := m.microNow()
	l.Spec.HolderIdentity = ptr.To(m.opts.Identity)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(min(m.opts.LeaseDuration/time.Second, math.MaxInt32))) //nolint:gosec // bounded just before
	l.Spec.RenewTime = now
	if acquire {
		l.Spec.AcquireTime = now
		l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, -1) + 1)
	}
}
