package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/store"
)

// taskIndex is what the two controllers share about tasks beyond the journal: which object
// name a tracked task has (a reconcile of a deleted object only knows its name), the tasks
// another live process owns, the tasks whose record could not be loaded, and the tasks being
// handed over (a hand-over, once started, completes whatever the labels say later).
type taskIndex struct {
	mu      sync.Mutex
	byName  map[types.NamespacedName]string
	foreign map[string]foreignOwner
	// foreignNames names the tasks in foreign, so that a deleted one is forgotten too.
	foreignNames map[types.NamespacedName]string
	problems     map[string]string
	handing      map[string]bool
	deferred     map[string]string
}

// foreignOwner is another process that owns a task; it is asked about again at recheckAt.
type foreignOwner struct {
	owner     store.Owner
	recheckAt time.Time
}

func newTaskIndex() *taskIndex {
	return &taskIndex{byName: map[types.NamespacedName]string{}, foreign: map[string]foreignOwner{},
		foreignNames: map[types.NamespacedName]string{}, problems: map[string]string{},
		handing: map[string]bool{}, deferred: map[string]string{}}
}

func (x *taskIndex) uidOf(nn types.NamespacedName) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.byName[nn]
}

// knownUIDOf is the uid this process knows under nn, tracked or owned elsewhere ("" if none):
// what a reconcile of a deleted object forgets.
func (x *taskIndex) knownUIDOf(nn types.NamespacedName) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if uid, ok := x.byName[nn]; ok {
		return uid
	}
	return x.foreignNames[nn]
}

func (x *taskIndex) track(nn types.NamespacedName, uid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byName[nn] = uid
	x.dropForeign(nn, uid)
	delete(x.problems, uid)
}

// forget drops everything known of uid, and nn's entry if it still names uid.
func (x *taskIndex) forget(nn types.NamespacedName, uid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byName[nn] == uid {
		delete(x.byName, nn)
	}
	x.dropForeign(nn, uid)
	delete(x.problems, uid)
	delete(x.deferred, uid)
	delete(x.handing, uid)
}

// dropForeign forgets that uid (named nn) is owned elsewhere; x.mu is held.
func (x *taskIndex) dropForeign(nn types.NamespacedName, uid string) {
	delete(x.foreign, uid)
	if x.foreignNames[nn] == uid {
		delete(x.foreignNames, nn)
	}
}

// setForeign records that owner holds uid and reports whether this is news (to be told once).
func (x *taskIndex) setForeign(nn types.NamespacedName, uid string, owner store.Owner, recheckAt time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	prev, known := x.foreign[uid]
	x.foreign[uid] = foreignOwner{owner: owner, recheckAt: recheckAt}
	x.foreignNames[nn] = uid
	return !known || prev.owner != owner
}

func (x *taskIndex) foreignOf(uid string) (foreignOwner, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	f, ok := x.foreign[uid]
	return f, ok
}

// setDeferred records why an action of uid waits ("" when it no longer does) and reports
// whether that changed.
func (x *taskIndex) setDeferred(uid, why string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.deferred[uid] == why {
		return false
	}
	if why == "" {
		delete(x.deferred, uid)
	} else {
		x.deferred[uid] = why
	}
	return true
}

// deferredWhy is why an action of uid waits, or "".
func (x *taskIndex) deferredWhy(uid string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deferred[uid]
}

// nameOf is the object name of a tracked task (a rare look-up: it scans).
func (x *taskIndex) nameOf(uid string) (types.NamespacedName, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for nn, u := range x.byName {
		if u == uid {
			return nn, true
		}
	}
	return types.NamespacedName{}, false
}

// setHandingOver marks uid as being handed over (on) or done with it (off).
func (x *taskIndex) setHandingOver(uid string, on bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if on {
		x.handing[uid] = true
	} else {
		delete(x.handing, uid)
	}
}

// handingOver reports whether a hand-over of uid started and has not completed.
func (x *taskIndex) handingOver(uid string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.handing[uid]
}

func (x *taskIndex) setProblem(uid, problem string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.problems[uid] = problem
}

func (x *taskIndex) problem(uid string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.problems[uid]
}
