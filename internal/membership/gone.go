package membership

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/store"
)

// Verdict says whether an owner is gone.
type Verdict struct {
	// Gone: the owner stopped running tasks for good; its tasks may be claimed.
	Gone bool
	// Expiring: not gone, but one of its two records has expired already (it is gone, or cut
	// off from one backend): nothing a user need be told about yet.
	Expiring bool
	// Why explains the answer for logs and Events.
	Why string
	// RecheckAfter is when to ask again about an owner that is not gone: when both of its
	// records would have expired if neither is renewed again.
	RecheckAfter time.Duration
}

// recheckSlack is added to a recheck so that it falls just after the expiry it waits for.
const recheckSlack = 50 * time.Millisecond

// Gone tells whether owner has stopped running tasks for good: its membership ended in both
// backends, the Kubernetes Lease (released, expired by this process's observation and
// confirmed by an uncached read, missing for the lease duration, or carrying a newer epoch of
// the same identity) and the PostgreSQL row (released, expired by the database's clock, or
// never written). An owner that still renews either may be running tasks through an outage of
// the other. Both are judged in one call, so a recheck falls when both could have expired, not
// once per backend. An error means the answer is unknown (treat as not gone). store.Claim
// checks the row again in the same statement that takes a task.
//
// A gone owner stays gone (it counts itself invalid for good before anyone else may see it
// gone), so that answer is kept for a while: a takeover of many tasks asks the API server and
// PostgreSQL once, not once per task.
func (m *Member) Gone(ctx context.Context, owner store.Owner) (Verdict, error) {
	if me := m.Owner(); owner == me {
		return Verdict{Why: "owned by this process", RecheckAfter: m.opts.LeaseDuration}, nil
	}
	if v, ok := m.verdicts.gone(owner, time.Duration(m.since())); ok {
		return v, nil
	}
	api, err := m.leaseGone(ctx, owner)
	if err != nil {
		return Verdict{}, err
	}
	row, err := m.opts.Roll.Member(ctx, owner.Epoch)
	if err != nil {
		return Verdict{}, fmt.Errorf("read the membership row of %s (epoch %d): %w", owner.Name, owner.Epoch, err)
	}
	v := judge(api, row)
	if v.Gone {
		m.verdicts.keep(owner, v, time.Duration(m.since()), m.opts.LeaseDuration)
	}
	return v, nil
}

// leaseSide is the Kubernetes half of a verdict.
type leaseSide struct {
	gone   bool
	absent bool // the Lease does not exist
	why    string
	left   time.Duration // until it would expire (not gone)
}

// judge combines both halves: gone only when both are, and otherwise asked again when both
// could have expired.
func judge(api leaseSide, row store.MemberState) Verdict {
	rowGone := !row.Live()
	switch {
	case row.Released:
		// It released its membership: it had stopped running tasks for good first.
		return Verdict{Gone: true, Why: api.why + "; it released its membership row"}
	case !row.Found && api.absent:
		// Nothing of it in either backend: nothing can be renewing.
		return Verdict{Gone: true, Why: api.why + ", and has no membership row"}
	case api.gone && rowGone:
		why := api.why
		switch {
		case row.Released:
			why += ", and released its membership row"
		case row.Found:
			why += ", and its membership row expired"
		default:
			why += ", and has no membership row"
		}
		return Verdict{Gone: true, Why: why}
	case api.gone:
		return Verdict{Expiring: true, RecheckAfter: row.ExpiresIn + recheckSlack,
			Why: fmt.Sprintf("%s; but it renews its membership row in PostgreSQL (expires in %s): it may be running tasks through an API server outage",
				api.why, row.ExpiresIn.Round(time.Millisecond))}
	case rowGone:
		return Verdict{Expiring: true, RecheckAfter: api.left + recheckSlack,
			Why: api.why + "; its membership row in PostgreSQL expired: it may be running tasks through a PostgreSQL outage"}
	}
	return Verdict{Why: api.why, RecheckAfter: max(api.left, row.ExpiresIn) + recheckSlack}
}

// leaseGone is the Kubernetes side of Gone.
func (m *Member) leaseGone(ctx context.Context, owner store.Owner) (leaseSide, error) {
	key := client.ObjectKey{Namespace: m.opts.Namespace, Name: LeaseName(owner.Name)}
	var lease coordinationv1.Lease
	err := m.opts.Client.Get(ctx, key, &lease)
	if notFound(err) || (err == nil && epochOf(&lease) < owner.Epoch) {
		// The cache may not have seen the Lease yet: ask the API server.
		err = m.opts.APIReader.Get(ctx, key, &lease)
	}
	switch {
	case notFound(err):
		// Deleted (or never made): a live owner makes it again at its next renewal, so only a
		// Lease missing for the lease duration counts.
		if left := m.observer.Absent(key.Namespace, key.Name, m.opts.LeaseDuration); left > 0 {
			return leaseSide{absent: true, left: left, why: fmt.Sprintf("%s (epoch %d) has no membership Lease, for %s so far", owner.Name,
				owner.Epoch, (m.opts.LeaseDuration - left).Round(time.Millisecond))}, nil
		}
		return leaseSide{gone: true, absent: true, why: fmt.Sprintf("%s (epoch %d) has had no membership Lease for %s", owner.Name, owner.Epoch,
			m.opts.LeaseDuration)}, nil
	case err != nil:
		return leaseSide{}, fmt.Errorf("read the membership Lease of %s: %w", owner.Name, err)
	}
	epoch := epochOf(&lease)
	switch {
	case epoch > owner.Epoch:
		// A newer process of the identity holds it, which it may only once this one released
		// it, exited (the same pod) or let it expire (mayTake).
		return leaseSide{gone: true, why: fmt.Sprintf("%s restarted (epoch %d, was %d)", owner.Name, epoch, owner.Epoch)}, nil
	case epoch < owner.Epoch:
		// It joined through PostgreSQL and has not reached the API server yet: the row decides.
		return leaseSide{gone: true, why: fmt.Sprintf("%s (epoch %d) has not published its Lease", owner.Name, owner.Epoch)}, nil
	case released(&lease):
		return leaseSide{gone: true, why: fmt.Sprintf("%s (epoch %d) released its Lease", owner.Name, owner.Epoch)}, nil
	}
	left := m.observer.Left(&lease)
	if left <= 0 {
		// The cache may lag behind a renewal: only the API server itself can confirm.
		if err := m.opts.APIReader.Get(ctx, key, &lease); err != nil {
			return leaseSide{}, fmt.Errorf("confirm that the membership Lease of %s expired: %w", owner.Name, err)
		}
		if left = m.observer.Left(&lease); left <= 0 || released(&lease) {
			return leaseSide{gone: true, why: fmt.Sprintf("%s (epoch %d) was not seen renewing its Lease for %s", owner.Name,
				owner.Epoch, leaseDuration(&lease))}, nil
		}
	}
	return leaseSide{left: left, why: fmt.Sprintf("%s (epoch %d) renews its Lease (seen %s ago)", owner.Name, owner.Epoch,
		(leaseDuration(&lease) - left).Round(time.Millisecond))}, nil
}

// Observe records what this process sees of a membership Lease (from a watch), so that its
// expiry is judged from the last change seen, not from the first time Gone asks: a standby
// that watched the owner's Lease knows it expired the moment it did.
func (m *Member) Observe(l *coordinationv1.Lease) { m.observer.Left(l) }

// ObserveMissing records that a membership Lease was deleted.
func (m *Member) ObserveMissing(namespace, name string) {
	m.observer.Absent(namespace, name, m.opts.LeaseDuration)
}

// Observer is how this process judges Lease expiry: the sharder judges the replicas' Leases
// with it too, so both agree on who is live.
func (m *Member) Observer() *Observer { return m.observer }

// verdicts keeps the owners found gone, for a while (their tasks are claimed by then).
type verdicts struct {
	mu sync.Mutex
	m  map[store.Owner]keptVerdict
}

type keptVerdict struct {
	v     Verdict
	until time.Duration // since the member's base
}

func (k *verdicts) gone(owner store.Owner, now time.Duration) (Verdict, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kept, ok := k.m[owner]
	return kept.v, ok && now < kept.until
}

func (k *verdicts) keep(owner store.Owner, v Verdict, now, d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[store.Owner]keptVerdict{}
	}
	for o, kept := range k.m { // a handful of owners at a time: prune as it goes
		if kept.until <= now {
			delete(k.m, o)
		}
	}
	k.m[owner] = keptVerdict{v: v, until: now + d}
}
