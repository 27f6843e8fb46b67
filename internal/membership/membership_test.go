package membership_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/internal/membership"
	"github.com/taskpilot/taskpilot/store"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// The membership tests run against a real kube-apiserver: Leases are its business.
var kube *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &kube, m.Run)) }

type world struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	c      client.Client
	epochs atomic.Int64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver")
	}
	c, err := client.New(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	w := &world{t: t, ctx: t.Context(), ns: "m-" + rand.String(8), c: c}
	require.NoError(t, c.Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}))
	return w
}

// member builds a member; the API client reads uncached (the cache is the operator's business).
func (w *world) member(identity string, clk *clocktesting.FakeClock) *membership.Member {
	w.t.Helper()
	opts := membership.Options{
		Client: w.c, APIReader: w.c, Namespace: w.ns, Identity: identity, Deployment: "taskpilot",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		NextEpoch: func(context.Context) (int64, error) { return w.epochs.Add(1), nil },
	}
	if clk != nil {
		opts.Clock = clk
	}
	m, err := membership.New(opts)
	require.NoError(w.t, err)
	return m
}

func (w *world) join(m *membership.Member) store.Owner {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	owner, err := m.Join(ctx)
	require.NoError(w.t, err)
	return owner
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
	require.Contains(t, v.Why, "restarted")

	v, err = b.Gone(w.ctx, store.Owner{Name: "never-seen", Epoch: 1})
	require.NoError(t, err)
	require.True(t, v.Gone, "an owner without a Lease is gone: %s", v.Why)
}

// TestAMemberThatStopsRenewingIsGoneAndKnowsIt: others see a member gone once its Lease was not
// renewed for the lease duration; the member itself stops counting itself valid earlier, at the
// renew deadline, and for good: a renewal that comes too late does not revive it.
func TestAMemberThatStopsRenewingIsGoneAndKnowsIt(t *testing.T) {
	w := newWorld(t)
	start := time.Now()
	clkA, clkB := clocktesting.NewFakeClock(start), clocktesting.NewFakeClock(start)
	a, b := w.member("pod-a", clkA), w.member("pod-b", clkB)
	ownerA := w.join(a)
	w.join(b)

	clkA.Step(2 * time.Second)
	require.True(t, a.Valid())
	clkA.Step(time.Second + time.Millisecond) // past the renew deadline: frozen, then woken up
	require.False(t, a.Valid())

	clkB.Step(3 * time.Second)
	v, err := b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.False(t, v.Gone, "others wait for the whole lease duration")
	clkB.Step(time.Second + time.Millisecond)
	v, err = b.Gone(w.ctx, ownerA)
	require.NoError(t, err)
	require.True(t, v.Gone)
	require.Contains(t, v.Why, "stopped renewing")

	runCtx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	for range 5 { // the renew ticker runs on the fake clock
		clkA.Step(500 * time.Millisecond)
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-done:
		require.True(t, errors.Is(err, membership.ErrLost), "Run reports the loss: %v", err)
	case <-runCtx.Done():
		t.Fatal("Run did not report the lost lease")
	}
	require.False(t, a.Valid(), "lost for good")
}

// TestTheSameIdentityTakesOver: a restarted process of the same pod takes its Lease over with a
// new epoch; the old process, if it is still around, finds its Lease taken and stops.
func TestTheSameIdentityTakesOver(t *testing.T) {
	w := newWorld(t)
	old := w.member("pod-a", nil)
	w.join(old)
	runCtx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- old.Run(runCtx) }()

	w.join(w.member("pod-a", nil))
	select {
	case err := <-done:
		require.ErrorIs(t, err, membership.ErrLost)
	case <-runCtx.Done():
		t.Fatal("the old process did not notice that its Lease was taken")
	}
	require.False(t, old.Valid())
}

func TestLeaseNames(t *testing.T) {
	require.Equal(t, "taskpilot-member-pod-a", membership.LeaseName("pod-a"))
	require.Equal(t, "taskpilot-member-host-1-x", membership.LeaseName("Host_1:X"), "a valid object name")
}
