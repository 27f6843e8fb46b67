package bulk_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
	"github.com/taskpilot/taskpilot/internal/plugin/kube"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// TestOnRealAPIServer applies the verbs against a real kube-apiserver. No operator runs: the
// wait tests play its part by writing status.
func TestOnRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd (make envtest)")
	}
	env, err := kubetest.Start()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, env.Stop()) })
	c, err := kube.NewClient(env.Config)
	require.NoError(t, err)

	t.Run("pause by selector: changed, already there, failed", func(t *testing.T) { testPauseBySelector(t, c) })
	t.Run("concurrent restarts do not collapse", func(t *testing.T) { testConcurrentRestarts(t, c) })
	t.Run("a stale read is read again", func(t *testing.T) { testStaleRead(t, c) })
	t.Run("wait on the watch", func(t *testing.T) { testWait(t, c) })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates a namespace of its own for a subtest.
func namespace(t *testing.T, c client.Client, name string) string {
	t.Helper()
	require.NoError(t, c.Create(ctxFor(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

func create(t *testing.T, c client.Client, ns, name string, state v1alpha1.DesiredState, lbls map[string]string) *v1alpha1.BackgroundTask {
	t.Helper()
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "countdown", State: state},
	}
	require.NoError(t, c.Create(ctxFor(t), bt))
	return bt
}

func list(t *testing.T, c client.Client, ns string, sel labels.Selector) []bulk.Target {
	t.Helper()
	var l v1alpha1.BackgroundTaskList
	require.NoError(t, c.List(ctxFor(t), &l, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}))
	var out []bulk.Target
	for i := range l.Items {
		out = append(out, bulk.Target{Key: client.ObjectKeyFromObject(&l.Items[i]), Obj: &l.Items[i]})
	}
	return out
}

func get(t *testing.T, c client.Client, key types.NamespacedName) *v1alpha1.BackgroundTask {
	t.Helper()
	bt := &v1alpha1.BackgroundTask{}
	require.NoError(t, c.Get(ctxFor(t), key, bt))
	return bt
}

func testPauseBySelector(t *testing.T, c client.Client) {
	ns := namespace(t, c, "pause")
	batch := map[string]string{"batch": "nightly"}
	for i := range 28 {
		create(t, c, ns, fmt.Sprintf("run-%02d", i), v1alpha1.DesiredRunning, batch)
	}
	create(t, c, ns, "parked-1", v1alpha1.DesiredPaused, batch)
	create(t, c, ns, "parked-2", v1alpha1.DesiredPaused, batch)
	create(t, c, ns, "other", v1alpha1.DesiredRunning, map[string]string{"batch": "other"})

	targets := list(t, c, ns, labels.SelectorFromSet(batch))
	require.Len(t, targets, 30)
	targets = append(targets, bulk.Target{Key: types.NamespacedName{Namespace: ns, Name: "missing"}})
	var calls, lastDone int
	out := bulk.Apply(ctxFor(t), c, bulk.Pause, targets, bulk.Options{Concurrency: 4, Progress: func(done, failed, total int) {
		calls++
		require.Equal(t, lastDone+1, done, "progress counts up one task at a time")
		require.Equal(t, 31, total)
		lastDone = done
	}})
	require.Equal(t, 31, calls)
	n := bulk.Counts(out)
	require.Equal(t, map[bulk.Result]int{bulk.Changed: 28, bulk.AlreadyThere: 2, bulk.Failed: 1}, n)
	for _, o := range out {
		switch o.Key.Name {
		case "missing":
			require.Equal(t, "not found", o.Detail)
		case "parked-1", "parked-2":
			require.Equal(t, bulk.AlreadyThere, o.Result)
		default:
			require.Equal(t, bulk.Changed, o.Result, o.Key.Name)
			bt := get(t, c, o.Key)
			require.Equal(t, v1alpha1.DesiredPaused, bt.Spec.State)
			require.True(t, managedBy(bt, bulk.FieldManager), "the patch is recorded under the plugin's field manager")
		}
	}
	require.Equal(t, v1alpha1.DesiredRunning, get(t, c, types.NamespacedName{Namespace: ns, Name: "other"}).Spec.State,
		"a task outside the selector is untouched")
}

func managedBy(bt *v1alpha1.BackgroundTask, manager string) bool {
	for _, f := range bt.ManagedFields {
		if f.Manager == manager {
			return true
		}
	}
	return false
}

func testConcurrentRestarts(t *testing.T, c client.Client) {
	ns := namespace(t, c, "restart")
	for i := range 10 {
		create(t, c, ns, fmt.Sprintf("r-%d", i), v1alpha1.DesiredRunning, nil)
	}
	// Two people restart the same tasks at once, both from the same read.
	targets := list(t, c, ns, labels.Everything())
	var wg sync.WaitGroup
	results := make([][]bulk.Outcome, 2)
	for i := range results {
		wg.Go(func() { results[i] = bulk.Apply(ctxFor(t), c, bulk.Restart, targets, bulk.Options{Concurrency: 10}) })
	}
	wg.Wait()
	for _, out := range results {
		require.Equal(t, map[bulk.Result]int{bulk.Changed: 10}, bulk.Counts(out))
	}
	for _, tg := range targets {
		require.Equal(t, int64(2), get(t, c, tg.Key).Spec.RestartGeneration, "two restarts of %s are two", tg.Key)
	}
}

func testStaleRead(t *testing.T, c client.Client) {
	ns := namespace(t, c, "stale")
	stale := create(t, c, ns, "s", v1alpha1.DesiredRunning, nil)
	fresh := stale.DeepCopy()
	fresh.Spec.RestartGeneration = 5
	require.NoError(t, c.Update(ctxFor(t), fresh))

	out := bulk.Apply(ctxFor(t), c, bulk.Restart, []bulk.Target{{Key: client.ObjectKeyFromObject(stale), Obj: stale}}, bulk.Options{})
	require.Equal(t, bulk.Changed, out[0].Result, out[0].Detail)
	require.Equal(t, "restartGeneration 5 → 6", out[0].Detail)
	require.Equal(t, int64(6), get(t, c, client.ObjectKeyFromObject(stale)).Spec.RestartGeneration)

	// Setting spec.state does not depend on what was read: a stale object is written as is.
	out = bulk.Apply(ctxFor(t), c, bulk.Pause, []bulk.Target{{Key: client.ObjectKeyFromObject(stale), Obj: stale}}, bulk.Options{})
	require.Equal(t, bulk.Changed, out[0].Result, out[0].Detail)
	require.Equal(t, v1alpha1.DesiredPaused, get(t, c, client.ObjectKeyFromObject(stale)).Spec.State)
}

// testWait pauses three tasks and plays the operator: it parks a and b, and deletes "gone"
// after them. Wait must report a and b Paused and "gone" failed. A second wait, for a task
// nobody parks, ends with its context and says where the task stands.
func testWait(t *testing.T, c client.WithWatch) {
	ns := namespace(t, c, "wait")
	for _, name := range []string{"a", "b", "gone", "stuck"} {
		bt := create(t, c, ns, name, v1alpha1.DesiredRunning, map[string]string{"group": name[:1]})
		setStatus(t, c, bt, v1alpha1.PhaseRunning)
	}
	out := bulk.Apply(ctxFor(t), c, bulk.Pause, list(t, c, ns, labels.Everything()), bulk.Options{})
	require.Equal(t, map[bulk.Result]int{bulk.Changed: 4}, bulk.Counts(out))
	stuck := out[len(out)-1]
	require.Equal(t, "stuck", stuck.Key.Name)
	out = out[:len(out)-1]

	go func() {
		// Events of one watch arrive in resourceVersion order: a and b are Paused before
		// "gone" is deleted.
		for _, name := range []string{"a", "b"} {
			bt := &v1alpha1.BackgroundTask{}
			if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, bt); err != nil {
				t.Errorf("get %s: %v", name, err)
				return
			}
			bt.Status.Phase, bt.Status.ObservedGeneration = v1alpha1.PhasePaused, bt.Generation
			if err := c.Status().Update(context.Background(), bt); err != nil {
				t.Errorf("park %s: %v", name, err)
				return
			}
		}
		gone := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone"}}
		if err := c.Delete(context.Background(), gone); err != nil {
			t.Errorf("delete gone: %v", err)
		}
	}()
	require.NoError(t, bulk.Wait(ctxFor(t), kube.TaskListWatch(c, ns, nil), bulk.Pause, out))
	for _, o := range out {
		if o.Key.Name == "gone" {
			require.Equal(t, bulk.Failed, o.Result)
			require.Equal(t, "deleted while waiting", o.Detail)
			continue
		}
		require.Equal(t, bulk.Changed, o.Result, o.Detail)
		require.Equal(t, v1alpha1.PhasePaused, o.Phase)
	}

	// Nobody parks "stuck": the wait ends with its context, whenever that is.
	ctx, cancel := context.WithTimeout(ctxFor(t), 500*time.Millisecond)
	defer cancel()
	sel := labels.SelectorFromSet(map[string]string{"group": "s"})
	only := []bulk.Outcome{stuck}
	require.NoError(t, bulk.Wait(ctx, kube.TaskListWatch(c, ns, sel), bulk.Pause, only))
	require.Equal(t, bulk.Failed, only[0].Result)
	require.Equal(t, "still Running when the wait ended: working", only[0].Detail)
}

// setStatus writes status as the operator would.
func setStatus(t *testing.T, c client.Client, bt *v1alpha1.BackgroundTask, phase v1alpha1.Phase) {
	t.Helper()
	bt = bt.DeepCopy()
	bt.Status.Phase, bt.Status.ObservedGeneration, bt.Status.Attempt, bt.Status.Message = phase, bt.Generation, 1, "working"
	require.NoError(t, c.Status().Update(context.Background(), bt))
}
