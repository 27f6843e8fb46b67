package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/internal/shrink"
	"github.com/taskpilot/taskpilot/store"
)

// taskIndex is what the two controllers share about tasks beyond the journal: which object
// name a task has (a reconcile of a deleted object only knows its name), the tasks another
// live process owns, the tasks whose record could not be loaded, the tasks to adopt again
// after their row changed, and the tasks being handed over (a hand-over, once started,
// completes whatever the labels say later).
//
// Every entry of a uid is reachable from its name, so deleting the object forgets all of it,
// and a name that comes to name another object (deleted and created again) forgets the old
// uid's. The maps give their memory back once emptied to a quarter of their peak: Go maps
// never shrink, and a failover leaves the survivor with every task of the cluster once.
type taskIndex struct {
	mu sync.Mutex
	// byName names the tracked tasks (the journal tracks them).
	byName shrink.Map[types.NamespacedName, string]
	// untracked names the tasks this index holds something of but the journal does not track
	// (owned elsewhere, with a problem, to adopt again).
	untracked shrink.Map[types.NamespacedName, string]
	foreign   shrink.Map[string, foreignOwner]
	problems  shrink.Map[string, string]
	handing   shrink.Map[string, bool]
	deferred  shrink.Map[string, string]
	// readopt marks a task whose row changed under this process (Stale): it is adopted again
	// from the row without waiting for leadership (reloading a row it owns claims nothing).
	readopt shrink.Map[string, bool]
	// places are what this process knows of the tasks' places in their queues (queue.go), and
	// queueWhy why a task waits for its queue (its status says so).
	places   shrink.Map[string, queuePlace]
	queueWhy shrink.Map[string, string]
}

// foreignOwner is another process that owns a task; it is asked about again at recheckAt.
type foreignOwner struct {
	owner     store.Owner
	recheckAt time.Time
}

func newTaskIndex() *taskIndex { return &taskIndex{} }

// knownUIDOf is the uid this process knows under nn, tracked or not ("" if none): what a
// reconcile of a deleted object forgets.
func (x *taskIndex) knownUIDOf(nn types.NamespacedName) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if uid, ok := x.byName.Lookup(nn); ok {
		return uid
	}
	return x.untracked.Get(nn)
}

// track records that the journal tracks uid under nn.
func (x *taskIndex) track(nn types.NamespacedName, uid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.name(nn, uid, true)
	x.foreign.Delete(uid)
	x.problems.Delete(uid)
	x.readopt.Delete(uid)
}

// name records nn -> uid, tracked or not, and forgets everything of the uid nn named before.
// x.mu is held.
func (x *taskIndex) name(nn types.NamespacedName, uid string, tracked bool) {
	for _, m := range []*shrink.Map[types.NamespacedName, string]{&x.byName, &x.untracked} {
		if old, ok := m.Lookup(nn); ok && old != uid {
			x.dropUID(old)
			m.Delete(nn)
		}
	}
	if tracked {
		x.byName.Set(nn, uid)
		x.untracked.Delete(nn)
	} else if x.byName.Get(nn) != uid {
		x.untracked.Set(nn, uid)
	}
}

// forget drops everything known of uid, and nn's entries if they still name uid.
func (x *taskIndex) forget(nn types.NamespacedName, uid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byName.Get(nn) == uid {
		x.byName.Delete(nn)
	}
	if x.untracked.Get(nn) == uid {
		x.untracked.Delete(nn)
	}
	x.dropUID(uid)
}

// dropUID forgets every per-uid entry; x.mu is held.
func (x *taskIndex) dropUID(uid string) {
	x.foreign.Delete(uid)
	x.problems.Delete(uid)
	x.deferred.Delete(uid)
	x.handing.Delete(uid)
	x.readopt.Delete(uid)
	x.places.Delete(uid)
	x.queueWhy.Delete(uid)
}

// setForeign records that owner holds uid and reports whether this is news (to be told once).
func (x *taskIndex) setForeign(nn types.NamespacedName, uid string, owner store.Owner, recheckAt time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	prev, known := x.foreign.Lookup(uid)
	x.name(nn, uid, false)
	x.foreign.Set(uid, foreignOwner{owner: owner, recheckAt: recheckAt})
	x.readopt.Delete(uid)
	return !known || prev.owner != owner
}

func (x *taskIndex) foreignOf(uid string) (foreignOwner, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.foreign.Lookup(uid)
}

// setReadopt marks uid (named nn) to be adopted again from its row.
func (x *taskIndex) setReadopt(nn types.NamespacedName, uid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.name(nn, uid, false)
	x.readopt.Set(uid, true)
}

// readopting reports whether uid is to be adopted again from its row.
func (x *taskIndex) readopting(uid string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.readopt.Get(uid)
}

// setDeferred records why an action of uid waits ("" when it no longer does) and reports
// whether that changed.
func (x *taskIndex) setDeferred(uid, why string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.deferred.Get(uid) == why {
		return false
	}
	if why == "" {
		x.deferred.Delete(uid)
	} else {
		x.deferred.Set(uid, why)
	}
	return true
}

// deferredWhy is why an action of uid waits, or "".
func (x *taskIndex) deferredWhy(uid string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deferred.Get(uid)
}

// nameOf is the object name of a tracked task (a rare look-up: it scans).
func (x *taskIndex) nameOf(uid string) (types.NamespacedName, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out types.NamespacedName
	found := false
	x.byName.Range(func(nn types.NamespacedName, u string) bool {
		if u == uid {
			out, found = nn, true
			return false
		}
		return true
	})
	return out, found
}

// setHandingOver marks uid as being handed over (on) or done with it (off).
func (x *taskIndex) setHandingOver(uid string, on bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if on {
		x.handing.Set(uid, true)
	} else {
		x.handing.Delete(uid)
	}
}

// handingOver reports whether a hand-over of uid started and has not completed.
func (x *taskIndex) handingOver(uid string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.handing.Get(uid)
}

// setProblem records why the record of uid (named nn) cannot be loaded.
func (x *taskIndex) setProblem(nn types.NamespacedName, uid, problem string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.name(nn, uid, x.byName.Get(nn) == uid)
	x.problems.Set(uid, problem)
}

func (x *taskIndex) problem(uid string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.problems.Get(uid)
}

// entries counts what the index holds, for tests and the taskpilot_index_entries gauge.
func (x *taskIndex) entries() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.byName.Len() + x.untracked.Len() + x.foreign.Len() + x.problems.Len() + x.handing.Len() +
		x.deferred.Len() + x.readopt.Len()
}

// placeOf is what this process knows of uid's place in its queue.
func (x *taskIndex) placeOf(uid string) (queuePlace, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.places.Lookup(uid)
}

// setPlace records uid's place in its queue.
func (x *taskIndex) setPlace(uid string, p queuePlace) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.places.Set(uid, p)
}

// admitPlace marks uid admitted by its queue, if it is known to wait in queue.
func (x *taskIndex) admitPlace(uid, queue string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.places.Lookup(uid)
	if !ok || p.queue != queue {
		return false
	}
	p.admitted = true
	x.places.Set(uid, p)
	return true
}

// dropPlace forgets uid's place in its queue.
func (x *taskIndex) dropPlace(uid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.places.Delete(uid)
}

// setQueueWhy records why uid waits for its queue ("" when it does not) and reports whether
// that changed.
func (x *taskIndex) setQueueWhy(uid, why string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.queueWhy.Get(uid) == why {
		return false
	}
	if why == "" {
		x.queueWhy.Delete(uid)
	} else {
		x.queueWhy.Set(uid, why)
	}
	return true
}

// queueWhyOf is why uid waits for its queue, or "".
func (x *taskIndex) queueWhyOf(uid string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.queueWhy.Get(uid)
}
