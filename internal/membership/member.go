package membership

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/store"
)

const (
	// LabelMember marks the membership Leases with the operator deployment their replicas
	// belong to, so a replica's cache watches just its own deployment's, and replicas of
	// another deployment never join its hash ring.
	LabelMember = "tasks.taskpilot.dev/member"
	// AnnotationEpoch records the fencing token of the process holding the Lease.
	AnnotationEpoch = "tasks.taskpilot.dev/epoch"
	// AnnotationIncarnation records the incarnation (the pod's UID) of the process holding the
	// Lease: a process of the same pod may take the Lease at once, its predecessor has exited.
	AnnotationIncarnation = "tasks.taskpilot.dev/incarnation"
	// leasePrefix starts the name of every membership Lease; the identity follows.
	leasePrefix = "taskpilot-member-"
)

// ErrLost is returned by Run when the member could renew neither its Lease nor its row in
// time (or found either taken): it stopped running tasks under its epoch for good.
var ErrLost = errors.New("membership lost")

// Defaults for zero Options fields: controller-runtime's leader-election lease and renew
// deadline, and a retry period of 1 s instead of its 2 s. A standby sees the leader's last
// renewal up to one retry period late and then tries once per retry period, so the retry
// period is what a takeover takes beyond the lease duration; it costs one Lease write and one
// row update per second per replica.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = time.Second
)

// Roll is the membership's PostgreSQL side (store.Repository implements it).
type Roll interface {
	// NextEpoch takes a fencing token.
	NextEpoch(ctx context.Context) (int64, error)
	// JoinMember records a live process for ttl by the database's clock; RenewMember extends
	// it (store.ErrMemberLost when released or missing); ReleaseMember ends it.
	JoinMember(ctx context.Context, owner store.Owner, deployment string, ttl time.Duration) error
	RenewMember(ctx context.Context, epoch int64, ttl time.Duration) error
	ReleaseMember(ctx context.Context, epoch int64) error
	// Member reads a process's row.
	Member(ctx context.Context, epoch int64) (store.MemberState, error)
}

// Options configure a Member.
type Options struct {
	// Client writes the Lease and reads Leases, from the cache where it has them.
	Client client.Client
	// APIReader reads a Lease the cache does not show, and confirms an expiry (uncached).
	APIReader client.Reader
	// Roll records the membership in PostgreSQL and hands out fencing tokens.
	Roll Roll
	// Namespace holds the membership Leases.
	Namespace string
	// Identity names this process; it must be unique among live processes (the pod name). A
	// second live process with the same identity (a duplicated --identity, a pod recreated
	// while the old one still runs on a partitioned node) never overlaps the first: it waits
	// for the first one's Lease to expire, as any other taker would.
	Identity string
	// Incarnation tells processes of one identity apart when they are the same pod restarted
	// (the pod's UID, from $POD_UID): the kubelet never runs two containers of a pod at once,
	// so a process whose Lease carries its own incarnation takes it at once. Empty: unknown,
	// and a restarted process waits for its predecessor's Lease to expire (or to be released,
	// which a clean shutdown does).
	Incarnation string
	// Deployment names the operator deployment this process belongs to (the value of its
	// Lease's LabelMember).
	Deployment string
	// LeaseDuration is how long others wait after they last saw a renewal (of the Lease, and
	// of the row by the database's clock) before they consider this process gone;
	// RenewDeadline (shorter) is how long this process keeps running tasks after the start of
	// its last successful renewal of either; RetryPeriod is how often it renews each.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Clock defaults to the real clock.
	Clock clock.WithTicker
	// Log defaults to discarding.
	Log logr.Logger
}

// Member is this process's membership.
type Member struct {
	opts     Options
	name     string
	base     time.Time // validity is kept as nanoseconds since base (monotonic)
	observer *Observer
	verdicts verdicts

	owner      atomic.Pointer[store.Owner]
	validUntil atomic.Int64
	lost       atomic.Bool
	joined     chan struct{}
	// apiRenewed and dbRenewed are when the last renewal of each backend started (since base;
	// 0: never), for Backends.
	apiRenewed, dbRenewed atomic.Int64

	mu    sync.Mutex // guards lease (Join, Run, Release)
	lease *coordinationv1.Lease
}

// New checks opts and returns a Member that has not joined yet.
func New(opts Options) (*Member, error) {
	if opts.Client == nil || opts.APIReader == nil || opts.Roll == nil || opts.Namespace == "" || opts.Identity == "" || opts.Deployment == "" {
		return nil, errors.New("membership: Client, APIReader, Roll, Namespace, Identity and Deployment are required")
	}
	opts.LeaseDuration = orDefault(opts.LeaseDuration, DefaultLeaseDuration)
	opts.RenewDeadline = orDefault(opts.RenewDeadline, DefaultRenewDeadline)
	opts.RetryPeriod = orDefault(opts.RetryPeriod, DefaultRetryPeriod)
	if opts.RenewDeadline >= opts.LeaseDuration || opts.RetryPeriod >= opts.RenewDeadline {
		return nil, fmt.Errorf("membership: want retry period (%s) < renew deadline (%s) < lease duration (%s)",
			opts.RetryPeriod, opts.RenewDeadline, opts.LeaseDuration)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	return &Member{opts: opts, name: LeaseName(opts.Identity), base: opts.Clock.Now(), joined: make(chan struct{}),
		observer: NewObserver(opts.Clock)}, nil
}

// LeaseName is the name of the membership Lease of identity.
func LeaseName(identity string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(identity) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := leasePrefix + strings.Trim(b.String(), "-.")
	return strings.TrimRight(name[:min(len(name), 253)], "-.")
}

// Owner is this process as a task owner; valid after Join.
func (m *Member) Owner() store.Owner {
	if o := m.owner.Load(); o != nil {
		return *o
	}
	return store.Owner{}
}

// Joined is closed once Join succeeded.
func (m *Member) Joined() <-chan struct{} { return m.joined }

// Valid reports whether this process may still run and record its tasks: it joined, and the
// start of its last successful renewal, of the Lease or of the row, is less than the renew
// deadline ago. Once false it stays false. It is cheap (the runner calls it on every pause
// point).
func (m *Member) Valid() bool {
	if m.lost.Load() || m.owner.Load() == nil {
		return false
	}
	if m.since() < m.validUntil.Load() {
		return true
	}
	m.lost.Store(true)
	return false
}

func (m *Member) since() int64 { return int64(m.opts.Clock.Since(m.base)) }

// extend moves the validity to start+RenewDeadline after a renewal (of either backend) that
// began at start, unless the member was already invalid when the renewal began (then it stays
// lost). The two backends' renewals race: the validity only grows.
func (m *Member) extend(start int64) {
	for {
		until := m.validUntil.Load()
		if start >= until {
			m.lost.Store(true)
			return
		}
		next := start + int64(m.opts.RenewDeadline)
		if next <= until || m.validUntil.CompareAndSwap(until, next) {
			return
		}
	}
}

// Backend is how one of the membership's two backends is doing, for readiness and metrics.
type Backend struct {
	// Renewed: the last renewal attempt that started within the renew deadline succeeded.
	Renewed bool
	// Since is how long ago the last successful renewal started (zero: never).
	Since time.Duration
}

// Backends reports the Kubernetes Lease's and the PostgreSQL row's renewals.
func (m *Member) Backends() (api, db Backend) {
	now := m.since()
	of := func(at int64) Backend {
		if at == 0 {
			return Backend{}
		}
		since := time.Duration(now - at)
		return Backend{Renewed: since < m.opts.RenewDeadline, Since: since}
	}
	return of(m.apiRenewed.Load()), of(m.dbRenewed.Load())
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// epochOf reads the epoch annotation of a Lease (0 when absent or malformed).
func epochOf(l *coordinationv1.Lease) int64 {
	e, err := strconv.ParseInt(l.Annotations[AnnotationEpoch], 10, 64)
	if err != nil {
		return 0
	}
	return e
}

func released(l *coordinationv1.Lease) bool { return ptr.Deref(l.Spec.HolderIdentity, "") == "" }

// notFound is apierrors.IsNotFound, for readability in switches.
func notFound(err error) bool { return apierrors.IsNotFound(err) }

// microNow is the current time as a Lease stores it.
func (m *Member) microNow() *metav1.MicroTime {
	t := metav1.NewMicroTime(m.opts.Clock.Now())
	return &t
}
