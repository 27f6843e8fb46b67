package operator

import (
	"fmt"
	"time"

	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaderElectionID names the leader-election Lease of a deployment: each taskpilot deployment
// of a cluster elects its own leader.
func leaderElectionID(deployment string) string { return deployment + ".tasks.taskpilot.dev" }

// leaderLock is the leader-election Lease held under this process's identity (--identity, the
// pod name), the same name it owns tasks under. controller-runtime's default lock names the
// holder by host name and a fresh UUID, so a container restarted in its pod waited for its own
// previous Lease to expire (15 s) before it could lead again; under a stable identity it takes
// its Lease back at once, as it takes back its membership Lease. Like the membership, this
// needs the identity to be unique among live replicas.
func leaderLock(cfg *rest.Config, c Options) (resourcelock.Interface, error) {
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	// A hung request must not outlast the renew deadline (controller-runtime does the same).
	cfg.Timeout = max(c.RenewDeadline/2, time.Second)
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	coordination, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, c.Namespace, leaderElectionID(c.Deployment),
		core, coordination, resourcelock.ResourceLockConfig{Identity: c.Identity})
	if err != nil {
		return nil, fmt.Errorf("leader election lock: %w", err)
	}
	return lock, nil
}
