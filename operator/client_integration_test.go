package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

// TestTheClientDrivesTasks: the Client's verbs, end to end: params refused before anything is
// created, many tasks enqueued in one call, listed by label, paused, resumed, restarted and
// stopped as kubectl taskpilot would, and a missing task told apart.
func TestTheClientDrivesTasks(t *testing.T) {
	w := newWorld(t)
	w.start("builtins", builtin.Register)
	reg := prometheus.NewRegistry()
	cl, err := operator.NewClient(w.ctx, kube.Config, operator.ClientOptions{Namespace: w.ns, DatabaseURL: w.dbURL, Metrics: reg})
	require.NoError(t, err)
	t.Cleanup(cl.Close)

	_, _, err = cl.Enqueue(w.ctx, "bad", builtin.SleepParams{})
	require.ErrorIs(t, err, runner.ErrInvalidParams, "Validate runs before the create")
	_, err = cl.Get(w.ctx, "bad")
	require.True(t, operator.IsNotFound(err), "nothing was created: %v", err)

	var batch []operator.NewTask
	for i := range 3 {
		batch = append(batch, operator.NewTask{Name: fmt.Sprintf("nap-%d", i),
			Params:  builtin.SleepParams{Duration: runner.Duration(time.Hour), Tick: runner.Duration(50 * time.Millisecond)},
			Options: []operator.TaskOption{operator.WithLabels(map[string]string{"batch": "naps"})}})
	}
	results, err := cl.EnqueueMany(w.ctx, batch)
	require.NoError(t, err)
	require.Len(t, results, 3)
	for _, r := range results {
		require.True(t, r.Created)
	}
	_, created, err := cl.Enqueue(w.ctx, "nap-0", batch[0].Params)
	require.NoError(t, err)
	require.False(t, created, "enqueueing a name again is idempotent")
	enqueued := counts(t, reg, "taskpilot_client_enqueued_total", "result")
	require.Equal(t, map[string]float64{"invalid": 1, "created": 3, "exists": 1}, enqueued)
	listed, err := cl.List(w.ctx, labels.SelectorFromSet(labels.Set{"batch": "naps"}))
	require.NoError(t, err)
	require.Len(t, listed, 3)
	names := []string{"nap-0", "nap-1", "nap-2"}

	// A task started through a queue that does not exist yet waits, and says so.
	queued, _, err := cl.Enqueue(w.ctx, "queued", builtin.SleepParams{Duration: runner.Duration(time.Second)}, operator.WithQueue("later", 3))
	require.NoError(t, err)
	require.Equal(t, "later", queued.Spec.Queue)
	require.Equal(t, int32(3), queued.Spec.Priority)
	require.Eventually(t, func() bool {
		bt, err := cl.Get(w.ctx, "queued")
		return err == nil && bt.Status.Phase == v1alpha1.PhasePending && strings.Contains(bt.Status.Message, `queue "later" does not exist`)
	}, waitTimeout, 50*time.Millisecond)

	ctx, cancel := context.WithTimeout(w.ctx, waitTimeout)
	defer cancel()
	wait := func(phase v1alpha1.Phase) {
		for _, n := range names {
			_, err := cl.Wait(ctx, n, phase)
			require.NoError(t, err, "%s %s", n, phase)
		}
	}
	wait(v1alpha1.PhaseRunning)
	require.NoError(t, cl.Pause(w.ctx, names...))
	wait(v1alpha1.PhasePaused)
	require.NoError(t, cl.Resume(w.ctx, names...))
	wait(v1alpha1.PhaseRunning)
	require.NoError(t, cl.Restart(w.ctx, "nap-0"))
	require.Eventually(t, func() bool {
		bt, err := cl.Get(w.ctx, "nap-0")
		return err == nil && bt.Status.Attempt == 2 && bt.Status.Phase == v1alpha1.PhaseRunning
	}, waitTimeout, 50*time.Millisecond, "a new attempt")
	require.NoError(t, cl.Stop(w.ctx, names...))
	wait(v1alpha1.PhaseStopped)

	err = cl.Pause(w.ctx, "nap-0", "no-such-task")
	require.Error(t, err)
	require.True(t, operator.IsNotFound(err), "the missing one is named: %v", err)
	require.ErrorContains(t, err, "no-such-task")
}

// counts sums a metric's samples by the value of label.
func counts(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
