package membership_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// The membership tests run against a real kube-apiserver: Leases are its business.
var kube *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &kube, m.Run)) }

type world struct {
	t    *testing.T
	ctx  context.Context
	ns   string
	c    client.WithWatch
	roll *fakeRoll
}

func newWorld(t *testing.T) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver")
	}
	c, err := client.NewWithWatch(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	w := &world{t: t, ctx: t.Context(), ns: "m-" + rand.String(8), c: c, roll: newFakeRoll()}
	require.NoError(t, c.Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}))
	return w
}

// process is one member with switches that cut it off from either backend.
type process struct {
	*membership.Member
	apiDown, dbDown *atomic.Bool
}

// member builds a member; the API client reads uncached (the cache is the operator's business).
// incarnation, when given, is the pod's UID.
func (w *world) member(identity string, clk *clocktesting.FakeClock, incarnation ...string) process {
	w.t.Helper()
	p := process{apiDown: &atomic.Bool{}, dbDown: &atomic.Bool{}}
	api := interceptor.NewClient(w.c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if p.apiDown.Load() {
				return errAPIDown
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if p.apiDown.Load() {
				return errAPIDown
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if p.apiDown.Load() {
				return errAPIDown
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	opts := membership.Options{
		Client: api, APIReader: api, Roll: w.roll.as(p.dbDown), Namespace: w.ns, Identity: identity, Deployment: "taskpilot",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
	}
	if len(incarnation) > 0 {
		opts.Incarnation = incarnation[0]
	}
	if clk != nil {
		opts.Clock = clk
	}
	m, err := membership.New(opts)
	require.NoError(w.t, err)
	p.Member = m
	return p
}

var errAPIDown = errors.New("injected: the API server does not answer")

func (w *world) join(m process) store.Owner {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	owner, err := m.Join(ctx)
	require.NoError(w.t, err)
	return owner
}

// run renews m until the test ends; the returned channel gets Run's result.
func (w *world) run(m process) <-chan error {
	ctx, cancel := context.WithCancel(w.ctx)
	done, returned := make(chan error, 1), make(chan struct{})
	go func() { done <- m.Run(ctx); close(returned) }()
	w.t.Cleanup(func() { cancel(); <-returned })
	return done
}

func TestJoinReleaseAndRestart(t *testing.T) {
	w := newWorld(t)
	a, b := w.member("pod-a", nil), w.member("pod-b", nil)
	ownerA, ownerB := w.join(a), w.join(b)
	require.Greater(t, ownerB.Epoch, ownerA.Epoch)
	require.True(t, a.Valid())

	v, err := b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.False(t, v.Gone, "a member that renews is alive: %s", v.Why)
	require.Positive(t, v.RecheckAfter)
	require.LessOrEqual(t, v.RecheckAfter, 4*time.Second+50*time.Millisecond, "ask again when its Lease would expire")
	v, err = b.Gone(w.ctx, ownerB)
	require.NoError(t, err)
	require.False(t, v.Gone, "a member is never gone to itself")

	require.NoError(t, a.Release(w.ctx))
	require.False(t, a.Valid(), "a released member runs nothing")
	v, err = b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.True(t, v.Gone)
	require.Contains(t, v.Why, "released")

	again := w.member("pod-a", nil)
	ownerA2 := w.join(again)
	require.Greater(t, ownerA2.Epoch, ownerA.Epoch, "a restart takes a new fencing token")
	v, err = b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.True(t, v.Gone, "the old epoch of a restarted member is gone")

	v, err = b.Gone(w.ctx, store.Owner{Name: "never-seen", Epoch: 1})
	require.NoError(t, err)
	require.True(t, v.Gone, "an owner without a Lease is gone: %s", v.Why)
}

// TestAMemberThatStopsRenewingIsGoneAndKnowsIt: others see a member gone once neither its Lease
// (by their own observation) nor its row (by the database's clock) was renewed for the lease
// duration; the member itself stops counting itself valid earlier, at the renew deadline, and
// for good: a renewal that comes too late does not revive it.
func TestAMemberThatStopsRenewingIsGoneAndKnowsIt(t *testing.T) {
	w := newWorld(t)
	start := time.Now()
	clkA, clkB := clocktesting.NewFakeClock(start), clocktesting.NewFakeClock(start)
	a, b := w.member("pod-a", clkA), w.member("pod-b", clkB)
	ownerA := w.join(a)
	w.join(b)
	v, err := b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.False(t, v.Gone, v.Why)

	clkA.Step(2 * time.Second)
	require.True(t, a.Valid())
	clkA.Step(time.Second + time.Millisecond) // past the renew deadline: frozen, then woken up
	require.False(t, a.Valid())

	clkB.Step(3 * time.Second)
	w.roll.fake.Step(3 * time.Second)
	v, err = b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.False(t, v.Gone, "others wait for the whole lease duration")
	clkB.Step(time.Second + time.Millisecond)
	w.roll.fake.Step(time.Second + time.Millisecond)
	v, err = b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.True(t, v.Gone)
	require.Contains(t, v.Why, "was not seen renewing its Lease")
	require.Contains(t, v.Why, "membership row expired")

	done := w.run(a)
	for range 5 { // the renew ticker runs on the fake clock
		clkA.Step(500 * time.Millisecond)
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-done:
		require.True(t, errors.Is(err, membership.ErrLost), "Run reports the loss: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not report the lost lease")
	}
	require.False(t, a.Valid(), "lost for good")
}

// TestEitherBackendKeepsTheMembership: a member cut off from the API server keeps its tasks
// through its row in PostgreSQL, and one cut off from PostgreSQL through its Lease; others do
// not consider it gone in either case, however long the outage, nor when they themselves reach
// only one backend (the partitions of docs/architecture.md).
func TestEitherBackendKeepsTheMembership(t *testing.T) {
	w := newWorld(t)
	w.roll.clock = clock.RealClock{}
	a, b := w.member("pod-a", nil), w.member("pod-b", nil)
	ownerA := w.join(a)
	w.join(b)
	w.run(a)
	w.run(b)
	lease := 4 * time.Second

	gone := func(who process) membership.Verdict {
		v, err := who.Gone(w.ctx, ownerA)
		if err != nil {
			return membership.Verdict{Why: "unknown: " + err.Error()}
		}
		return v
	}
	for _, cut := range []struct {
		name string
		off  *atomic.Bool
	}{{"API server", a.apiDown}, {"PostgreSQL", a.dbDown}} {
		cut.off.Store(true)
		deadline := time.Now().Add(lease + time.Second) // past the lease duration
		for time.Now().Before(deadline) {
			require.True(t, a.Valid(), "a is cut off from the %s only", cut.name)
			v := gone(b)
			require.False(t, v.Gone, "a keeps its tasks without the %s: %s", cut.name, v.Why)
			time.Sleep(200 * time.Millisecond)
		}
		api, db := a.Backends()
		require.Equal(t, cut.name == "PostgreSQL", api.Renewed, "Backends shows the degraded one")
		require.Equal(t, cut.name == "API server", db.Renewed)
		cut.off.Store(false)
		require.Eventually(t, func() bool { api, db := a.Backends(); return api.Renewed && db.Renewed }, 3*lease, 100*time.Millisecond)
	}

	// Partitions: a reaches only the API server, b only PostgreSQL; then the other way round.
	// b never concludes that a is gone (it cannot confirm the Lease, or the row is live).
	for _, p := range [][2]*atomic.Bool{{a.dbDown, b.apiDown}, {a.apiDown, b.dbDown}} {
		p[0].Store(true)
		p[1].Store(true)
		deadline := time.Now().Add(lease + time.Second) // past the lease duration
		for time.Now().Before(deadline) {
			require.True(t, a.Valid())
			require.False(t, gone(b).Gone)
			time.Sleep(200 * time.Millisecond)
		}
		p[0].Store(false)
		p[1].Store(false)
		require.Eventually(t, func() bool { api, db := a.Backends(); return api.Renewed && db.Renewed }, 3*lease, 100*time.Millisecond)
	}

	// Cut off from both, a stops counting itself valid within the renew deadline, and b sees
	// it gone only after the lease duration in both.
	a.apiDown.Store(true)
	a.dbDown.Store(true)
	lostAt := time.Now()
	require.Eventually(t, func() bool { return !a.Valid() }, 2*lease, 20*time.Millisecond)
	require.Eventually(t, func() bool { return gone(b).Gone }, 3*lease, 100*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(lostAt), lease, "gone in both only a lease duration after its last renewal")
}

// TestASecondProcessOfALiveIdentityWaits: a second process with the identity of a live one (a
// duplicated --identity, a pod recreated while the old one still runs) neither takes the Lease
// nor ends the first one's row: nobody sees the first one gone, it keeps running, and the
// second waits until the first's Lease expired by its own observation. Ending the first's row or
// taking its Lease at once would make it gone while it runs: both would run the same tasks.
func TestASecondProcessOfALiveIdentityWaits(t *testing.T) {
	w := newWorld(t)
	w.roll.clock = clock.RealClock{}
	old, b := w.member("pod-a", nil), w.member("pod-b", nil)
	ownerOld := w.join(old)
	done := w.run(old)
	w.join(b)

	second := w.member("pod-a", nil)
	w.join(second)
	lease := w.lease("pod-a")
	require.Equal(t, strconv.FormatInt(ownerOld.Epoch, 10), lease.Annotations[membership.AnnotationEpoch], "the Lease stays the first's")
	v, err := b.Gone(w.ctx, ownerOld)
	require.NoError(t, err)
	require.False(t, v.Gone, "the first process of pod-a is live: %s", v.Why)
	require.Eventually(t, func() bool { return w.lease("pod-a").ResourceVersion != lease.ResourceVersion }, 10*time.Second,
		50*time.Millisecond, "the first process renews its Lease")
	select {
	case err := <-done:
		t.Fatalf("the first process lost its membership: %v", err)
	default:
	}
	require.True(t, old.Valid())

	// The first one stops (without a release, as a crash would): the second takes over once
	// the Lease expired by its own observation.
	old.apiDown.Store(true)
	old.dbDown.Store(true)
	done2 := w.run(second)
	require.Eventually(t, func() bool {
		return w.lease("pod-a").Annotations[membership.AnnotationEpoch] == strconv.FormatInt(second.Owner().Epoch, 10)
	}, 30*time.Second, 100*time.Millisecond, "the second process takes the Lease once the first's expired")
	require.Eventually(t, func() bool { v, err := b.Gone(w.ctx, ownerOld); return err == nil && v.Gone }, 30*time.Second, 100*time.Millisecond)
	select {
	case err := <-done2:
		t.Fatalf("the second process lost its membership: %v", err)
	default:
	}
}

// TestARestartedContainerTakesItsMembershipBackAtOnce: a process of the same pod (the same
// incarnation) takes the Lease at once and ends its predecessor's row: the kubelet never runs
// two containers of one pod at the same time, so that one has exited.
func TestARestartedContainerTakesItsMembershipBackAtOnce(t *testing.T) {
	w := newWorld(t)
	crashed := w.member("pod-a", nil, "uid-1")
	ownerOld := w.join(crashed) // never released: a crash
	b := w.member("pod-b", nil)
	w.join(b)
	restarted := w.member("pod-a", clocktesting.NewFakeClock(time.Now()), "uid-1") // its clock never moves: no waiting
	ownerNew := w.join(restarted)
	require.Equal(t, strconv.FormatInt(ownerNew.Epoch, 10), w.lease("pod-a").Annotations[membership.AnnotationEpoch])
	v, err := b.Gone(w.ctx, ownerOld)
	require.NoError(t, err)
	require.True(t, v.Gone, v.Why)
	require.Contains(t, v.Why, "restarted")
	require.Contains(t, v.Why, "released its membership row")
}

// TestADeletedLeaseIsNotGoneAndIsRecreated: someone deletes a live member's Lease. Others do not
// count it gone (it keeps its tasks through its row, and a missing Lease counts only after the
// lease duration), and the member makes its Lease again at its next renewal.
func TestADeletedLeaseIsNotGoneAndIsRecreated(t *testing.T) {
	w := newWorld(t)
	a, b := w.member("pod-a", nil), w.member("pod-b", nil)
	ownerA := w.join(a)
	w.join(b)
	w.run(a)
	require.NoError(t, w.c.Delete(w.ctx, w.lease("pod-a")))
	v, err := b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.False(t, v.Gone, "a missing Lease is not a gone owner: %s", v.Why)
	require.Eventually(t, func() bool {
		var l coordinationv1.Lease
		err := w.c.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: membership.LeaseName("pod-a")}, &l)
		return err == nil && l.Annotations[membership.AnnotationEpoch] == strconv.FormatInt(ownerA.Epoch, 10)
	}, 10*time.Second, 50*time.Millisecond, "the member makes its Lease again")
	require.True(t, a.Valid())
	api, _ := a.Backends()
	require.True(t, api.Renewed)
}

// TestBothRecordsAreJudgedInOneLook: an owner whose row expires after its Lease is asked about
// again when both could have expired, and is gone at that recheck (a recheck at the Lease's
// expiry alone would find the row live and need a second one).
func TestBothRecordsAreJudgedInOneLook(t *testing.T) {
	w := newWorld(t)
	start := time.Now()
	clkB := clocktesting.NewFakeClock(start)
	a, b := w.member("pod-a", clocktesting.NewFakeClock(start)), w.member("pod-b", clkB)
	ownerA := w.join(a) // its Lease expires 4 s from now unless renewed
	w.join(b)
	require.NoError(t, w.roll.as(&atomic.Bool{}).RenewMember(w.ctx, ownerA.Epoch, 6*time.Second)) // its row 6 s from now
	v, err := b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.False(t, v.Gone)
	require.GreaterOrEqual(t, v.RecheckAfter, 6*time.Second, "asked again when the row expires too, not when the Lease does: %s", v.Why)
	clkB.Step(v.RecheckAfter)
	w.roll.fake.Step(v.RecheckAfter)
	v, err = b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.True(t, v.Gone, "gone at the first recheck: %s", v.Why)
}

// TestAWatchedLeaseExpiresWhenItStopsChanging: a standby that watched an owner's Lease judges
// its expiry from the last change it saw, not from the first time it asks (a standby that
// asked only after the owner died waited a second lease duration).
func TestAWatchedLeaseExpiresWhenItStopsChanging(t *testing.T) {
	w := newWorld(t)
	start := time.Now()
	clkB := clocktesting.NewFakeClock(start)
	a, b := w.member("pod-a", clocktesting.NewFakeClock(start)), w.member("pod-b", clkB)
	ownerA := w.join(a)
	w.join(b)
	b.Observe(w.lease("pod-a")) // the watch delivered its last renewal
	clkB.Step(4*time.Second + time.Millisecond)
	w.roll.fake.Step(4*time.Second + time.Millisecond)
	v, err := b.Gone(w.ctx, ownerA) // asked for the first time, after the expiry
	require.NoError(t, err)
	require.True(t, v.Gone, v.Why)
}

func (w *world) lease(identity string) *coordinationv1.Lease {
	w.t.Helper()
	var l coordinationv1.Lease
	require.NoError(w.t, w.c.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: membership.LeaseName(identity)}, &l))
	return &l
}

func TestLeaseNames(t *testing.T) {
	require.Equal(t, "taskpilot-member-pod-a", membership.LeaseName("pod-a"))
	require.Equal(t, "taskpilot-member-host-1-x", membership.LeaseName("Host_1:X"), "a valid object name")
}
