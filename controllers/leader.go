package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElectionID names the leader-election Lease of a deployment: each taskpilot deployment
// of a cluster elects its own leader.
func LeaderElectionID(deployment string) string { return deployment + ".tasks.taskpilot.dev" }

// leadership elects one replica of the deployment as its leader, with client-go's leader
// election on a Lease, and keeps campaigning after a loss for as long as the process lives.
//
// controller-runtime's own leader election ends the process when the leader misses a renewal,
// which stopped every task of the cluster on a few seconds of API server trouble. Here leading
// decides only what needs one writer: adopting tasks nobody runs yet (without sharding), the
// assignment of tasks to replicas (with sharding) and the publication of the task types. The
// tasks a replica owns are proved by its membership (internal/membership), not by leadership,
// so a replica that stops leading keeps running them, and a new leader leaves them to it for as
// long as that membership is live.
type leadership struct {
	lock                resourcelock.Interface // nil: no election, always leading
	name                string                 // the Lease's name, which labels the metrics
	lease, renew, retry time.Duration
	leading             atomic.Bool
	elected             chan struct{} // closed when first elected
	electedOnce         sync.Once
	mu                  sync.Mutex
	gained              []func()
	log                 logr.Logger
}

func newLeadership(lock resourcelock.Interface, name string, lease, renew, retry time.Duration, log logr.Logger) *leadership {
	return &leadership{lock: lock, name: name, lease: lease, renew: renew, retry: retry, elected: make(chan struct{}), log: log}
}

// Leading reports whether this replica leads now.
func (l *leadership) Leading() bool { return l.leading.Load() }

// Elected is closed when this replica is first elected.
func (l *leadership) Elected() <-chan struct{} { return l.elected }

// OnGain registers f to run (in its own goroutine) each time this replica becomes leader.
func (l *leadership) OnGain(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gained = append(l.gained, f)
}

// NeedLeaderElection: the election runs on every replica (manager.LeaderElectionRunnable).
func (l *leadership) NeedLeaderElection() bool { return false }

// Start campaigns until ctx ends (manager.Runnable). It never returns an error for a lost or an
// unreachable API server: it campaigns again.
func (l *leadership) Start(ctx context.Context) error {
	if l.lock == nil {
		l.gain()
		<-ctx.Done()
		return nil
	}
	for {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: l.lock, LeaseDuration: l.lease, RenewDeadline: l.renew, RetryPeriod: l.retry,
			ReleaseOnCancel: true,
			// The name labels client-go's leader_election_master_status gauge.
			Name: l.name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { l.gain() },
				OnStoppedLeading: func() {
					if l.leading.Swap(false) {
						l.log.Info("stopped leading; campaigning again (the tasks this replica owns keep running)")
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx) // returns when ctx ends or the leadership is lost
		if ctx.Err() != nil {
			return nil
		}
	}
}

// gain marks this replica leader and runs the callbacks.
func (l *leadership) gain() {
	l.leading.Store(true)
	l.electedOnce.Do(func() { close(l.elected) })
	l.log.Info("leading")
	l.mu.Lock()
	fs := append([]func(){}, l.gained...)
	l.mu.Unlock()
	for _, f := range fs {
		go f()
	}
}

// LeaderLock is the leader-election Lease of a deployment. Its holder is the identity (the pod
// name, the name it owns tasks under) and the incarnation (the pod's UID), so that a container
// restarted in its pod, whose previous container has exited, takes its Lease back at once,
// while a second process with the same identity (a duplicated --identity, a pod recreated
// while the old one still runs) waits for the first's Lease to expire as any other replica
// would: client-go lets a holder that names itself lead without waiting. Without an
// incarnation the holder carries a random suffix of this process: a restart waits for the
// Lease to expire, unless it was released (a clean shutdown releases it).
func LeaderLock(cfg *rest.Config, namespace, deployment, identity, incarnation string, renewDeadline time.Duration) (resourcelock.Interface, error) {
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	// A hung request must not outlast the renew deadline (controller-runtime does the same).
	cfg.Timeout = max(renewDeadline/2, time.Second)
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	coordination, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, namespace, LeaderElectionID(deployment),
		core, coordination, resourcelock.ResourceLockConfig{Identity: leaderHolder(identity, incarnation)})
	if err != nil {
		return nil, fmt.Errorf("leader election lock: %w", err)
	}
	return lock, nil
}

// leaderHolder is the holder of the leader Lease for a process: identity_incarnation.
func leaderHolder(identity, incarnation string) string {
	if incarnation == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		incarnation = "p" + hex.EncodeToString(b[:])
	}
	return identity + "_" + incarnation
}

// LeaderIdentity is the identity of the process holding a leader Lease (its holder without the
// incarnation).
func LeaderIdentity(holder string) string {
	if i := strings.LastIndex(holder, "_"); i > 0 {
		return holder[:i]
	}
	return holder
}
