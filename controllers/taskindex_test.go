package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// TestForgetDropsEverythingKnownOfATask: once a task is forgotten (deleted, released, handed
// over), nothing of it stays in the index, its foreign entry and its hand-over mark included:
// whatever is left stays for the life of the process, an entry for every task another replica
// ever owned.
func TestForgetDropsEverythingKnownOfATask(t *testing.T) {
	x := newTaskIndex()
	nn, uid := types.NamespacedName{Namespace: "ns", Name: "t"}, "uid-1"
	x.setForeign(nn, uid, store.Owner{Name: "other", Epoch: 7}, time.Now())
	if got := x.knownUIDOf(nn); got != uid {
		t.Fatalf("a deleted task owned elsewhere must be found by its name: knownUIDOf = %q", got)
	}
	x.setHandingOver(uid, true)
	x.setDeferred(uid, "waiting for memory")
	x.forget(nn, uid)
	if _, ok := x.foreignOf(uid); ok {
		t.Error("a forgotten task is still known as owned elsewhere")
	}
	if x.handingOver(uid) {
		t.Error("a forgotten task is still marked as handing over")
	}
	if why := x.deferredWhy(uid); why != "" {
		t.Errorf("a forgotten task still says it waits: %q", why)
	}
	if n := x.entries(); n != 0 {
		t.Errorf("%d entries left after forget", n)
	}
}

// TestATaskWithAProblemIsFoundByItsName: a task first seen while PostgreSQL is down (its record
// could not be loaded, so it is not tracked) is forgotten when its object is deleted; its problem
// must not outlive it under a name that leads nowhere.
func TestATaskWithAProblemIsFoundByItsName(t *testing.T) {
	x := newTaskIndex()
	nn := types.NamespacedName{Namespace: "ns", Name: "t"}
	x.setProblem(nn, "uid-1", "database unreachable")
	if got := x.knownUIDOf(nn); got != "uid-1" {
		t.Fatalf("knownUIDOf = %q", got)
	}
	x.forget(nn, x.knownUIDOf(nn))
	if n := x.entries(); n != 0 {
		t.Errorf("%d entries left after forget", n)
	}
}

// TestANameReusedForgetsTheOldObject: an object deleted and created again under the same name
// (seen as one change after a watch outage) leaves nothing of the old uid behind, tracked or
// owned elsewhere.
func TestANameReusedForgetsTheOldObject(t *testing.T) {
	nn := types.NamespacedName{Namespace: "ns", Name: "t"}
	other := store.Owner{Name: "other", Epoch: 7}
	for name, reuse := range map[string]func(x *taskIndex){
		"owned elsewhere, then tracked": func(x *taskIndex) { x.setForeign(nn, "old", other, time.Now()); x.track(nn, "new") },
		"owned elsewhere twice": func(x *taskIndex) {
			x.setForeign(nn, "old", other, time.Now())
			x.setForeign(nn, "new", other, time.Now())
		},
		"tracked, then owned elsewhere":        func(x *taskIndex) { x.track(nn, "old"); x.setForeign(nn, "new", other, time.Now()) },
		"with a problem, then with a problem":  func(x *taskIndex) { x.setProblem(nn, "old", "down"); x.setProblem(nn, "new", "down") },
		"handing over, then adopted afresh":    func(x *taskIndex) { x.track(nn, "old"); x.setHandingOver("old", true); x.track(nn, "new") },
		"to adopt again, then owned elsewhere": func(x *taskIndex) { x.setReadopt(nn, "old"); x.setForeign(nn, "new", other, time.Now()) },
	} {
		x := newTaskIndex()
		reuse(x)
		x.forget(nn, x.knownUIDOf(nn))
		if n := x.entries(); n != 0 {
			t.Errorf("%s: %d entries left of the old object after the new one was forgotten", name, n)
		}
	}
}

// TestANewObjectUnderAnOldNameIsAChange: after a watch outage, a task deleted and created again
// under its name arrives as one update of equal generation; the reconciler must see it (to
// forget the old task and adopt the new one). A status-only update must not pass.
func TestANewObjectUnderAnOldNameIsAChange(t *testing.T) {
	old := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "ns", UID: "a", Generation: 1, ResourceVersion: "1"}}
	recreated := old.DeepCopy()
	recreated.UID, recreated.ResourceVersion = "b", "7"
	statusOnly := old.DeepCopy()
	statusOnly.ResourceVersion = "2"
	p := taskChanges()
	if !p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: recreated}) {
		t.Error("a new object under the same name, same generation, was dropped")
	}
	if p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: statusOnly}) {
		t.Error("an update that changes neither the spec, the assignment nor the object passed")
	}
}
