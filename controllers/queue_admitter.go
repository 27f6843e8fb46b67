package controllers

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/taskpilot/taskpilot/controllers/internal/kit"
	"github.com/taskpilot/taskpilot/store"
)

// queueKey names a queue: TaskQueues are namespaced, and a task names one of its namespace.
type queueKey struct{ namespace, name string }

// admitter runs the admission rounds of the queues this replica's tasks wait in (store.Admit):
// every interval while tasks wait, and at once when a place was given back here. A round gives
// the free places to the best waiting tasks of any replica (PostgreSQL decides, under the
// queue row's lock); this replica then wakes its own admitted tasks. Tasks of other replicas
// are woken by their own admitter's next round.
type admitter struct {
	store    *store.Repository
	owner    func() store.Owner
	ready    <-chan struct{}
	clock    clock.WithTicker
	interval time.Duration
	timeout  time.Duration
	wake     *kit.Wake
	// admitted tells the task index that uid holds a place in queue (the reconcile it wakes
	// then asks PostgreSQL, which confirms).
	admitted func(uid, queue string) bool
	// tell sets why a waiting task waits (its status says so).
	tell func(uid string, nn types.NamespacedName, why string)
	log  logr.Logger

	mu      sync.Mutex
	waiting map[queueKey]map[string]types.NamespacedName // queue -> uid -> name
	queueOf map[string]queueKey
	// since is when each uid was registered: a round that began later and did not find it
	// waiting (deleted, handed over, taken by another owner) forgets it.
	since map[string]time.Time
	poked map[queueKey]bool
	last  map[queueKey]store.Admission
	// told is the kind of wait (waitKind) the queue's waiting tasks were last told of.
	told map[queueKey]string
	kick chan struct{}
}

func newAdmitter(st *store.Repository, owner func() store.Owner, ready <-chan struct{}, clk clock.WithTicker,
	interval, timeout time.Duration, wake *kit.Wake, admitted func(uid, queue string) bool,
	tell func(uid string, nn types.NamespacedName, why string), log logr.Logger) *admitter {
	return &admitter{store: st, owner: owner, ready: ready, clock: clk, interval: interval, timeout: timeout, wake: wake,
		admitted: admitted, tell: tell, log: log, told: map[queueKey]string{},
		waiting: map[queueKey]map[string]types.NamespacedName{}, queueOf: map[string]queueKey{}, since: map[string]time.Time{},
		poked: map[queueKey]bool{}, last: map[queueKey]store.Admission{}, kick: make(chan struct{}, 1)}
}

// wait registers uid (named nn) as waiting in queue, and runs a round soon.
func (a *admitter) wait(namespace, queue, uid string, nn types.NamespacedName) {
	k := queueKey{namespace, queue}
	a.mu.Lock()
	if old, ok := a.queueOf[uid]; ok && old != k {
		a.dropLocked(uid)
	}
	if a.waiting[k] == nil {
		a.waiting[k] = map[string]types.NamespacedName{}
	}
	a.waiting[k][uid] = nn
	a.queueOf[uid] = k
	a.since[uid] = a.clock.Now()
	a.poked[k] = true
	a.mu.Unlock()
	a.signal()
}

// forget stops waking uid.
func (a *admitter) forget(uid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropLocked(uid)
}

func (a *admitter) dropLocked(uid string) {
	k, ok := a.queueOf[uid]
	if !ok {
		return
	}
	delete(a.queueOf, uid)
	delete(a.since, uid)
	delete(a.waiting[k], uid)
	if len(a.waiting[k]) == 0 {
		delete(a.waiting, k)
	}
}

// isWaiting reports whether uid is registered as waiting in namespace/queue: the admitter
// wakes it when it is admitted.
func (a *admitter) isWaiting(uid, namespace, queue string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.queueOf[uid]
	return ok && k == queueKey{namespace, queue}
}

// poke runs a round of queue soon: a place was given back here.
func (a *admitter) poke(namespace, queue string) {
	if queue == "" {
		return
	}
	a.mu.Lock()
	a.poked[queueKey{namespace, queue}] = true
	a.mu.Unlock()
	a.signal()
}

func (a *admitter) signal() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// why says why tasks wait in queue, from its last round ("" before the first).
func (a *admitter) why(namespace, queue string) string {
	a.mu.Lock()
	last, ok := a.last[queueKey{namespace, queue}]
	a.mu.Unlock()
	if !ok {
		return ""
	}
	return queueWaitMessage(queue, last)
}

// Start runs rounds until ctx ends (manager.Runnable).
func (a *admitter) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-a.ready:
	}
	ticker := a.clock.NewTicker(a.interval)
	defer ticker.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
			all = true
		case <-a.kick:
		}
		for _, k := range a.due(all) {
			a.round(ctx, k)
		}
	}
}

// due lists the queues to run a round of: the poked ones, and on a tick every queue a task of
// this replica waits in.
func (a *admitter) due(all bool) []queueKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	set := maps.Clone(a.poked)
	clear(a.poked)
	if all {
		for k := range a.waiting {
			set[k] = true
		}
	}
	return slices.Collect(maps.Keys(set))
}

// round runs one admission round of k and wakes this replica's admitted tasks.
func (a *admitter) round(ctx context.Context, k queueKey) {
	dbctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	began := a.clock.Now()
	res, err := a.store.Admit(dbctx, k.namespace, k.name, a.owner(), began)
	if err != nil {
		a.log.V(1).Info("admission round failed; the next tick tries again", "namespace", k.namespace, "queue", k.name, "error", err.Error())
		return
	}
	a.mu.Lock()
	if len(a.waiting[k]) > 0 {
		a.last[k] = res
	} else {
		delete(a.last, k)
		delete(a.told, k)
	}
	var wake []types.NamespacedName
	var uids []string
	for _, uid := range res.Mine {
		if nn, ok := a.waiting[k][uid]; ok {
			wake, uids = append(wake, nn), append(uids, uid)
			a.dropLocked(uid)
		}
	}
	// A task registered before the round and not waiting in this queue any more (deleted,
	// handed over, owned by another replica now) is forgotten, not looked at for ever.
	still := map[string]bool{}
	for _, uid := range res.MineWaiting {
		still[uid] = true
	}
	for uid := range a.waiting[k] {
		if !still[uid] && a.since[uid].Before(began) {
			a.dropLocked(uid)
		}
	}
	// The waiting tasks are told why they wait when the kind of wait changed (the queue was
	// paused, resumed, deleted, filled up): their statuses are rewritten then, not at each
	// start, so a busy queue costs no API writes for its waiting tasks.
	var tell map[string]types.NamespacedName
	if kind := waitKind(res); len(a.waiting[k]) > 0 && a.told[k] != kind {
		a.told[k] = kind
		tell = maps.Clone(a.waiting[k])
	}
	a.mu.Unlock()
	for i, nn := range wake {
		a.admitted(uids[i], k.name)
		a.wake.Notify(nn)
	}
	why := queueWaitMessage(k.name, res)
	for uid, nn := range tell {
		a.tell(uid, nn, why)
	}
}

// waitKind names why the tasks of a queue wait, coarsely: what their status says changes
// only when this does.
func waitKind(a store.Admission) string {
	switch {
	case a.Missing:
		return "missing"
	case a.Paused:
		return "paused"
	case a.RateLimited:
		return "rate"
	}
	return "full"
}

// NeedLeaderElection: every replica runs the rounds of its own waiting tasks.
func (a *admitter) NeedLeaderElection() bool { return false }
