package sharding_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/witness"
)

// TestAQueueLimitHoldsAcrossThreeReplicaProcesses: three sharded replicas run the tasks of one
// TaskQueue of concurrency 4, and one replica is killed halfway; counted from the witness (not
// from the operator's record), never more than 4 of its tasks work at once, the limit is
// reached, and every task finishes, the killed replica's from where they were.
func TestAQueueLimitHoldsAcrossThreeReplicaProcesses(t *testing.T) {
	w := newWorld(t)
	for _, r := range []string{"q-a", "q-b", "q-c"} {
		w.start(r)
	}
	w.waitRing(3)
	require.NoError(t, w.c.Create(w.ctx, &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "limited"},
		Spec: v1alpha1.TaskQueueSpec{Concurrency: 4}}))
	const n, steps, interval = 40, 5, 200 * time.Millisecond
	params := fmt.Sprintf(`{"steps":%d,"interval":%q,"checkpointEvery":1}`, steps, interval)
	for i := range n {
		require.NoError(t, w.c.Create(w.ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: fmt.Sprintf("q%03d", i)},
			Spec: v1alpha1.BackgroundTaskSpec{TaskName: witness.TaskType, Params: &runtime.RawExtension{Raw: []byte(params)}, Queue: "limited"}}))
	}
	finished := func() int {
		var k int
		require.NoError(t, w.db.QueryRow(w.ctx, `SELECT count(*) FROM background_tasks WHERE namespace = $1 AND status = 'FINISHED'`, w.ns).Scan(&k))
		return k
	}
	require.Eventually(t, func() bool { return finished() >= n/2 }, 3*time.Minute, 100*time.Millisecond)
	require.NoError(t, w.replicas["q-b"].Kill())
	require.Eventually(t, func() bool { return finished() == n }, 3*time.Minute, 200*time.Millisecond, "every task finishes")

	execs := w.executions()
	w.requireNoDoubleRun(execs)
	w.requireContiguousHistories()
	spans := map[string][]witness.Span{}
	for uid, es := range execs {
		spans[uid] = witness.WorkSpans(es, interval)
	}
	most := 0
	for _, p := range witness.Peaks(spans) {
		require.LessOrEqual(t, p.Tasks, 4, "%d tasks of the queue worked at once at %s", p.Tasks, p.At.Format(time.StampMilli))
		most = max(most, p.Tasks)
	}
	require.Equal(t, 4, most, "the queue was full at times: the limit, not the load, held them back")
	var admitted int64
	require.NoError(t, w.db.QueryRow(w.ctx, `SELECT admitted FROM background_task_queues WHERE namespace = $1 AND name = 'limited'`, w.ns).Scan(&admitted))
	require.GreaterOrEqual(t, admitted, int64(n), "every start was admitted by PostgreSQL")
}
