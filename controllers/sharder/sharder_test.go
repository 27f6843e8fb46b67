package sharder

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/internal/kit"
)

// After a replica dies, its running tasks are relabelled before its finished ones: the label
// writes are what a takeover waits for beyond the lease, and finished tasks need theirs only
// when restarted.
func TestRunningTasksAreMovedBeforeFinishedOnes(t *testing.T) {
	s := &Sharder{resync: kit.NewWake()}
	q := priorityqueue.New[reconcile.Request]("sharder-test")
	defer q.ShutDown()
	if err := s.resync.Source().Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	task := func(name string, phase v1alpha1.Phase) v1alpha1.BackgroundTask {
		return v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Status: v1alpha1.BackgroundTaskStatus{Phase: phase}}
	}
	s.lookAtAll([]v1alpha1.BackgroundTask{
		task("done-1", v1alpha1.PhaseFinished), task("done-2", v1alpha1.PhaseFailed), task("run-1", v1alpha1.PhaseRunning),
		task("done-3", v1alpha1.PhaseStopped), task("paused-1", v1alpha1.PhasePaused), task("new-1", ""),
		task("pending-1", v1alpha1.PhasePending),
	})
	live := map[string]bool{"run-1": true, "paused-1": true, "new-1": true, "pending-1": true}
	for i := range 7 {
		req, _ := q.Get()
		q.Done(req)
		if want := i < len(live); live[req.Name] != want {
			t.Fatalf("look %d went to %s: every task that may be running comes before the finished ones", i+1, req.Name)
		}
	}
}
