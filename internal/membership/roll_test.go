package membership_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/taskpilot/taskpilot/store"
)

// fakeRoll is PostgreSQL's side of the membership (store.Repository's methods, tested against
// PostgreSQL in store/members_test.go) with the database's clock in the test's hands.
type fakeRoll struct {
	clock  clock.PassiveClock      // the database's clock: fake, or real where the test says so
	fake   *clocktesting.FakeClock // clock when fake
	mu     sync.Mutex
	epochs int64
	rows   map[int64]*fakeMember
}

type fakeMember struct {
	identity string
	expires  time.Time
	released bool
}

var errDBDown = errors.New("injected: PostgreSQL does not answer")

func newFakeRoll() *fakeRoll {
	fake := clocktesting.NewFakeClock(time.Now())
	return &fakeRoll{clock: fake, fake: fake, rows: map[int64]*fakeMember{}}
}

// as is the roll as one process reaches it: down while down is set.
func (f *fakeRoll) as(down *atomic.Bool) *rollOf { return &rollOf{f: f, down: down} }

type rollOf struct {
	f    *fakeRoll
	down *atomic.Bool
}

func (r *rollOf) NextEpoch(context.Context) (int64, error) {
	if r.down.Load() {
		return 0, errDBDown
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.epochs++
	return r.f.epochs, nil
}

func (r *rollOf) JoinMember(_ context.Context, o store.Owner, _ string, ttl time.Duration) error {
	if r.down.Load() {
		return errDBDown
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.rows[o.Epoch] = &fakeMember{identity: o.Name, expires: r.f.clock.Now().Add(ttl)}
	return nil
}

func (r *rollOf) RenewMember(_ context.Context, epoch int64, ttl time.Duration) error {
	if r.down.Load() {
		return errDBDown
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	m, ok := r.f.rows[epoch]
	if !ok || m.released {
		return store.ErrMemberLost
	}
	m.expires = r.f.clock.Now().Add(ttl)
	return nil
}

func (r *rollOf) ReleaseMember(_ context.Context, epoch int64) error {
	if r.down.Load() {
		return errDBDown
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if m, ok := r.f.rows[epoch]; ok {
		m.released = true
	}
	return nil
}

func (r *rollOf) Member(_ context.Context, epoch int64) (store.MemberState, error) {
	if r.down.Load() {
		return store.MemberState{}, errDBDown
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	m, ok := r.f.rows[epoch]
	if !ok {
		return store.MemberState{}, nil
	}
	return store.MemberState{Found: true, Released: m.released, ExpiresIn: m.expires.Sub(r.f.clock.Now())}, nil
}
