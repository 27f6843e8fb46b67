package main

import (
	"strconv"
)

// Where the replicas keep their Lease and the tasks live.
const (
	leaseNamespace = "default"
	// leaseName is the operator's leader-election Lease (package operator).
	leaseName = "taskpilot.tasks.taskpilot.dev"
	// namespace holds the load; the warm-up batch runs in a namespace of its own so that the
	// checks see exactly the load.
	namespace       = "chaos"
	warmupNamespace = "chaos-warmup"
)

// operatorArgs are the flags of every operator process the run starts, in one place: when the
// operator's flags change, only this changes.
// Leases are short so that a crashed or frozen leader is replaced within seconds. Each replica
// owns tasks under its own identity and incarnation, kept across its restarts as a pod's name
// and UID are across its container's restarts: a restarted replica takes its membership Lease
// (and its tasks) back at once, while a frozen one is fenced out as soon as its Lease expires.
func operatorArgs(replica string, leaderElect, sharding bool) []string {
	return []string{
		"--identity=chaos-" + replica,
		"--incarnation=chaos-" + replica + "-pod",
		"--sharding=" + strconv.FormatBool(sharding),
		"--leader-elect=" + strconv.FormatBool(leaderElect),
		"--leader-election-namespace=" + leaseNamespace,
		"--leader-elect-lease-duration=" + strconv.Itoa(leaseSeconds) + "s",
		"--leader-elect-renew-deadline=4s",
		"--leader-elect-retry-period=1s",
		// The run studies faults, not the slot queue: room for the load's peak.
		"--max-concurrent-tasks=128",
		"--stop-grace=5s",
		"--progress-update-interval=5s",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	}
}
