package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/sharding"
)

// slowRelease holds every statement that gives a row up (store.Release) for a while, as a
// loaded database would: long enough for the sharder to call a drain off meanwhile.
type slowRelease struct {
	delay   time.Duration
	started atomic.Int32
}

func (s *slowRelease) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "SET owner = NULL") {
		s.started.Add(1)
		time.Sleep(s.delay)
	}
	return ctx
}

func (s *slowRelease) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestADrainCalledOffMidHandOverCompletes: a replica is asked to drain a task, hands the run
// over, and while it releases the row the sharder calls the drain off (the task is to stay).
// The hand-over that started completes (the row is released, then claimed again) and the task
// runs here again from its checkpoint, with a runner entry that obeys pause and stop: it is
// not left Running with no goroutine, nor settling forever with its row released.
func TestADrainCalledOffMidHandOverCompletes(t *testing.T) {
	h := newHarness(t)
	slow := &slowRelease{delay: 700 * time.Millisecond}
	h.startOperator(operatorConfig{sharding: true, identity: "r-a", statements: slow})
	bt := h.create("stays", "steps", `{"steps":400,"interval":"20ms"}`)
	uid := string(bt.UID)
	require.Eventually(t, func() bool { return h.shardOf("stays") == "r-a" }, waitTimeout, 20*time.Millisecond)
	h.waitRow(uid, lifecycle.Running)
	require.Eventually(t, func() bool { return h.checkpointNext(uid) >= 3 }, waitTimeout, 20*time.Millisecond)

	// Ask r-a to drain the task, as the sharder does before a move; r-a is the only replica, so
	// the sharder calls the drain off as soon as it sees it, while r-a is releasing the row. On
	// a loaded machine the sharder can call it off before r-a looked at the task at all (then
	// nothing was handed over): ask again until r-a has begun to release the row.
	for attempt := 0; slow.started.Load() == 0; attempt++ {
		require.Less(t, attempt, 10, "r-a never began to hand the task over")
		require.NoError(t, h.c.Patch(h.ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "stays"}},
			client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+sharding.LabelDrain+`":"true"}}}`))))
		require.Eventually(t, func() bool {
			l := sharding.LabelsOf(h.get("stays").Labels)
			return l.Shard == "r-a" && !l.Draining
		}, waitTimeout, 20*time.Millisecond, "the sharder calls the drain off")
		waitUntil(3*time.Second, func() bool { return slow.started.Load() > 0 })
	}

	// The task runs here again, resumed from its checkpoint, and obeys the user.
	require.Eventually(t, func() bool {
		hist := h.history(uid)
		return hist[len(hist)-1] == "RUNNING>RUNNING@1"
	}, waitTimeout, 50*time.Millisecond, "the task is claimed again and resumed: %v", h.history(uid))
	h.patchSpec("stays", `{"state":"Paused"}`)
	h.waitPhase("stays", v1alpha1.PhasePaused)
	h.waitRow(uid, lifecycle.Paused)
	h.patchSpec("stays", `{"state":"Stopped"}`)
	h.waitRow(uid, lifecycle.Stopped)
	require.Empty(t, h.probes.doubles(), "the task never ran twice at a time")
}

// TestAHandOverNeverRemovesAnAssignmentItDidNotRead: a drained replica removes the assignment
// labels it read, not a newer assignment. Here the sharder's next assignment (to r-b) lands
// just before r-a's removal is sent, as it does when r-a looks again from a lagging cache: the
// removal must be refused (Conflict), or r-b would see its task move away and hand it over
// again (a task handed over twice).
func TestAHandOverNeverRemovesAnAssignmentItDidNotRead(t *testing.T) {
	h := newHarness(t)
	var raced atomic.Bool
	var removal atomic.Pointer[error]
	h.startOperator(operatorConfig{sharding: true, identity: "r-a", onPatch: func(obj client.Object, data []byte, send func() error) error {
		if !strings.Contains(string(data), `"`+sharding.LabelShard+`":null`) || !raced.CompareAndSwap(false, true) {
			return send()
		}
		require.NoError(t, h.c.Patch(h.ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: obj.GetName()}},
			client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+sharding.LabelShard+`":"r-b","`+sharding.LabelDrain+`":null}}}`))))
		err := send()
		removal.Store(&err)
		return err
	}})
	ring := sharding.NewRing([]string{"r-a", "r-b"}, 0)
	var uid, name string
	for i := 0; uid == ""; i++ {
		bt := h.create(fmt.Sprintf("moves-%d", i), "steps", `{"steps":100000,"interval":"20ms"}`)
		if ring.Assign(string(bt.UID)) == "r-b" {
			uid, name = string(bt.UID), bt.Name
		}
	}
	h.waitRow(uid, lifecycle.Running)
	require.Eventually(t, func() bool { return h.checkpointNext(uid) >= 3 }, waitTimeout, 20*time.Millisecond)
	rb := h.startOperator(operatorConfig{sharding: true, identity: "r-b"})

	require.Eventually(t, func() bool { return removal.Load() != nil }, waitTimeout, 20*time.Millisecond, "r-a drained the task")
	require.True(t, apierrors.IsConflict(*removal.Load()), "the removal of labels r-a did not read must be refused: %v", *removal.Load())
	resumes := func() int {
		n := 0
		for _, step := range h.history(uid) {
			if step == "RUNNING>RUNNING@1" {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool {
		row, err := h.repo.GetTask(h.ctx, uid)
		owner, owned := row.Owned()
		return err == nil && owned && owner.Name == "r-b" && resumes() == 1
	}, waitTimeout, 50*time.Millisecond, "r-b runs it")
	h.settle(rb, name) // r-b looked at the task again since: no second move came of it
	require.Equal(t, 1, resumes(), "one move: %v", h.history(uid))
	require.Empty(t, h.probes.doubles())
}

// waitUntil waits up to d for cond, and says whether it came true.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
