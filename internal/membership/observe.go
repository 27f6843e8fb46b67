package membership

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/clock"
)

// Observer judges Lease expiry the way client-go's leader election does: by when this process
// saw a Lease's record last change, on its own monotonic clock, never by comparing the
// holder's renewTime (another node's wall clock) with its own. A node whose clock runs ahead
// therefore cannot think a live holder's Lease expired. A Lease seen for the first time counts
// from then: a process that just started waits a whole lease duration before it judges one
// expired. Safe for concurrent use.
type Observer struct {
	clock clock.PassiveClock
	base  time.Time // observations are kept as durations since base (monotonic)
	mu    sync.Mutex
	seen  map[string]observation
}

type observation struct {
	record string        // the Lease's resourceVersion and renewTime: a change is a renewal
	at     time.Duration // when this process saw record first, since base
}

// NewObserver returns an Observer on clk (the real clock when nil).
func NewObserver(clk clock.PassiveClock) *Observer {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Observer{clock: clk, base: clk.Now(), seen: map[string]observation{}}
}

// Left is how long the Lease has before it expires by this observer's account (zero or less:
// expired). It records the Lease's current record when it changed.
func (o *Observer) Left(l *coordinationv1.Lease) time.Duration {
	key := l.Namespace + "/" + l.Name
	record := l.ResourceVersion
	if l.Spec.RenewTime != nil {
		record += "@" + l.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	now := o.clock.Since(o.base)
	o.mu.Lock()
	seen, ok := o.seen[key]
	if !ok || seen.record != record {
		seen = observation{record: record, at: now}
		o.seen[key] = seen
	}
	o.mu.Unlock()
	return seen.at + leaseDuration(l) - now
}

// absentRecord is the record of a Lease seen missing: its absence counts from when it was
// first seen missing, as a record's age does.
const absentRecord = "<absent>"

// Absent is how long a Lease seen missing has before it counts as expired, d after this
// observer first saw it missing (zero or less: expired). A live holder recreates a deleted
// Lease at its next renewal, which a taker then sees as a new record.
func (o *Observer) Absent(namespace, name string, d time.Duration) time.Duration {
	key := namespace + "/" + name
	now := o.clock.Since(o.base)
	o.mu.Lock()
	seen, ok := o.seen[key]
	if !ok || seen.record != absentRecord {
		seen = observation{record: absentRecord, at: now}
		o.seen[key] = seen
	}
	o.mu.Unlock()
	return seen.at + d - now
}

func leaseDuration(l *coordinationv1.Lease) time.Duration {
	if l.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	return time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
}
