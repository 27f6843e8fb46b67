package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/store"
)

// TestForgetDropsEverythingKnownOfATask: once a task is forgotten (deleted, released, handed
// over), nothing of it stays in the index. Before, a task last seen owned elsewhere kept its
// foreign entry, and one deleted mid-hand-over its hand-over mark, for the life of the process:
// an entry for every task another replica had owned, found by the chaos run's memory check.
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
	if n := len(x.foreign) + len(x.foreignNames) + len(x.handing) + len(x.deferred) + len(x.problems) + len(x.byName); n != 0 {
		t.Errorf("%d entries left after forget", n)
	}
}
