package sharding_test

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/test/apiproxy"
	"github.com/taskpilot/taskpilot/test/tcpproxy"
)

// TestSlowLeaseAnswersMoveNoTask: an API server that answers Lease requests later than the
// renew deadline (overloaded) for four lease durations, while it serves everything else. No
// replica can renew its Lease in time, and leadership comes and goes; each keeps its tasks
// through its membership row, and no task moves: a sharder that judged the replicas by their
// Leases alone would see the others' Leases expire between their late renewals and move their
// tasks, each stopped and resumed elsewhere from its checkpoint.
func TestSlowLeaseAnswersMoveNoTask(t *testing.T) {
	w := newWorld(t)
	proxy, err := apiproxy.Start(kube.Config)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	viaProxy := filepath.Join(workDir, w.ns+"-proxy.kubeconfig")
	require.NoError(t, proxy.WriteKubeconfig(viaProxy))
	w.env = append(w.env, "KUBECONFIG="+viaProxy) // the last one wins
	for _, r := range []string{"r-a", "r-b"} {
		w.start(r)
	}
	names, before := w.runningTasks()

	delay := renewDeadline + 2*time.Second
	proxy.SlowLeases(delay)
	w.waitAdvanced(names, w.checkpoints(), int(4*leaseDuration/time.Second))
	proxy.SlowLeases(0)
	t.Logf("%d Lease requests were answered %s late", proxy.Delayed(), delay)
	w.requireUndisturbed(names, before)
}

// runningTasks creates 40 tasks that outlast the test, waits until each runs on one of the
// two replicas and has done a few steps, and says where each runs.
func (w *world) runningTasks() ([]string, map[string]placement) {
	w.t.Helper()
	w.waitRing(2)
	names := w.createTasks(40, 100000, time.Second)
	_, before := w.waitSettled(names, "r-a", "r-b")
	w.waitAdvanced(names, nil, 2)
	return names, before
}

// requireUndisturbed waits, after a fault, until the sharder sees both replicas again and
// every task has done two lease durations' worth of steps (a sharder that misjudged the
// replicas moves tasks within a few retry periods), then requires that every task is where it
// was, under the same owner, in the one execution it had, and that no replica exited.
func (w *world) requireUndisturbed(names []string, before map[string]placement) {
	w.t.Helper()
	w.waitRing(2)
	w.waitAdvanced(names, w.checkpoints(), int(2*leaseDuration/time.Second))
	after := w.placements()
	execs := w.executions()
	w.requireNoDoubleRun(execs)
	w.requireContiguousHistories()
	for _, name := range names {
		b, a := before[name], after[name]
		require.Equal(w.t, b.shard, a.shard, "%s stayed on its replica", name)
		require.Equal(w.t, b.epoch, a.epoch, "%s kept its owner", name)
		require.Len(w.t, execs[b.uid], 1, "%s ran on without a stop and a resume", name)
	}
	for name, op := range w.replicas {
		select {
		case <-op.Exited():
			w.t.Fatalf("replica %s exited through the fault: %v", name, op.ExitErr())
		default:
		}
	}
}

// TestEachReplicaReachingOneBackendRunsNothingTwice: for three lease durations r-a reaches only
// the API server (its PostgreSQL connections cut) and r-b only PostgreSQL (the API server out
// of its reach). Each keeps its tasks through the backend it still reaches, and neither takes
// the other's: r-a cannot claim (a claim is a PostgreSQL statement), and r-b can neither see
// r-a's Lease expire nor be told to take anything. Once the partition heals, no task has moved
// or run twice, and each is still in the one execution it had.
func TestEachReplicaReachingOneBackendRunsNothingTwice(t *testing.T) {
	w := newWorld(t)
	dbURL := ""
	for _, kv := range w.env {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
			dbURL = v
		}
	}
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	pgProxy, err := tcpproxy.Start(u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pgProxy.Close() })
	u.Host = pgProxy.Addr()
	apiProxy, err := apiproxy.Start(kube.Config)
	require.NoError(t, err)
	t.Cleanup(func() { _ = apiProxy.Close() })
	viaProxy := filepath.Join(workDir, w.ns+"-proxy.kubeconfig")
	require.NoError(t, apiProxy.WriteKubeconfig(viaProxy))

	ra := w.startWith("r-a", "DATABASE_URL="+u.String())
	rb := w.startWith("r-b", "KUBECONFIG="+viaProxy)
	names, before := w.runningTasks()

	pgProxy.Cut()        // r-a: the API server only
	apiProxy.Block(true) // r-b: PostgreSQL only
	// Each replica sees the backend it lost stop renewing its membership, and keeps the other.
	w.waitMetric(ra, `taskpilot_membership_backend_renewed{backend="postgresql"} 0`)
	w.waitMetric(ra, `taskpilot_membership_backend_renewed{backend="kubernetes"} 1`)
	w.waitMetric(rb, `taskpilot_membership_backend_renewed{backend="kubernetes"} 0`)
	w.waitMetric(rb, `taskpilot_membership_backend_renewed{backend="postgresql"} 1`)
	partition := 3 * leaseDuration
	t.Logf("partitioned for %s: r-a reaches only the API server, r-b only PostgreSQL", partition)
	time.Sleep(partition) // the fault's length, not a wait for a condition
	pgProxy.Heal()
	apiProxy.Block(false)
	w.requireUndisturbed(names, before)
}
