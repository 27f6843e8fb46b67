package v1alpha1_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// TestCRDOnRealAPIServer installs the generated CRD into a real kube-apiserver and checks what
// users rely on: defaults, validation with readable messages, the status subresource, and the
// field documentation kubectl explain shows.
func TestCRDOnRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd (make envtest)")
	}
	env, err := kubetest.Start()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, env.Stop()) })

	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		Spec: v1alpha1.BackgroundTaskSpec{
			TaskName: "countdown",
			Params:   &runtime.RawExtension{Raw: []byte(`{"from":3,"extra":{"nested":true}}`)},
		},
	}
	require.NoError(t, c.Create(ctx, bt))

	t.Run("defaults are applied", func(t *testing.T) {
		got := &v1alpha1.BackgroundTask{}
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(bt), got))
		require.Equal(t, v1alpha1.DesiredRunning, got.Spec.State)
		require.Equal(t, int64(0), got.Spec.RestartGeneration)
		require.Equal(t, int32(0), got.Spec.MaxRetries)
		require.JSONEq(t, `{"from":3,"extra":{"nested":true}}`, string(got.Spec.Params.Raw), "unknown params fields are preserved")
	})

	rejected := []struct {
		name    string
		mutate  func(*v1alpha1.BackgroundTask)
		message string
	}{
		{"taskName is immutable", func(b *v1alpha1.BackgroundTask) { b.Spec.TaskName = "sleep" },
			"taskName is immutable: create a new BackgroundTask to run another task type"},
		{"restartGeneration may only grow", func(b *v1alpha1.BackgroundTask) { b.Spec.RestartGeneration = -1 },
			"spec.restartGeneration: Invalid value"},
		{"state is an enum", func(b *v1alpha1.BackgroundTask) { b.Spec.State = "Sleeping" },
			`spec.state: Unsupported value: "Sleeping": supported values: "Running", "Paused", "Stopped"`},
		{"timeout of at least 1s", func(b *v1alpha1.BackgroundTask) { b.Spec.Timeout = &metav1.Duration{Duration: time.Millisecond} },
			"timeout must be at least 1s"},
		{"stallTimeout of at least 1s", func(b *v1alpha1.BackgroundTask) { b.Spec.StallTimeout = &metav1.Duration{Duration: time.Millisecond} },
			"stallTimeout must be at least 1s"},
		{"pauseTimeout of at least 1s", func(b *v1alpha1.BackgroundTask) { b.Spec.PauseTimeout = &metav1.Duration{} },
			"pauseTimeout must be at least 1s"},
		{"backoff.initial of at least 100ms", func(b *v1alpha1.BackgroundTask) {
			b.Spec.Backoff = &v1alpha1.Backoff{Initial: &metav1.Duration{Duration: time.Millisecond}}
		}, "backoff.initial must be at least 100ms"},
		{"backoff.initial not above max", func(b *v1alpha1.BackgroundTask) {
			b.Spec.Backoff = &v1alpha1.Backoff{Initial: &metav1.Duration{Duration: time.Hour}, Max: &metav1.Duration{Duration: time.Minute}}
		}, "backoff.initial must not be more than backoff.max"},
		{"backoff.max of at most 24h", func(b *v1alpha1.BackgroundTask) {
			b.Spec.Backoff = &v1alpha1.Backoff{Max: &metav1.Duration{Duration: 48 * time.Hour}}
		}, "backoff.max must be at most 24h"},
		{"jitter within 0-100%", func(b *v1alpha1.BackgroundTask) { b.Spec.Backoff = &v1alpha1.Backoff{JitterPercent: 101} },
			"spec.backoff.jitterPercent: Invalid value"},
		{"ttl not negative", func(b *v1alpha1.BackgroundTask) { b.Spec.TTLSecondsAfterFinished = ptr.To[int32](-1) },
			"spec.ttlSecondsAfterFinished: Invalid value"},
		{"ttl per outcome not negative", func(b *v1alpha1.BackgroundTask) {
			b.Spec.TTLSecondsAfterOutcome = &v1alpha1.OutcomeTTL{Failed: ptr.To[int32](-1)}
		}, "spec.ttlSecondsAfterOutcome.failed: Invalid value"},
	}
	for _, tc := range rejected {
		t.Run("rejects: "+tc.name, func(t *testing.T) {
			got := &v1alpha1.BackgroundTask{}
			require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(bt), got))
			tc.mutate(got)
			err := c.Update(ctx, got)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.message)
		})
	}

	t.Run("restartGeneration may grow but not shrink", func(t *testing.T) {
		got := &v1alpha1.BackgroundTask{}
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(bt), got))
		got.Spec.RestartGeneration = 2
		require.NoError(t, c.Update(ctx, got))
		got.Spec.RestartGeneration = 1
		err := c.Update(ctx, got)
		require.Error(t, err)
		require.Contains(t, err.Error(), "restartGeneration may only grow: increase it to restart the task")
	})

	t.Run("items: one of count and list, any JSON values, immutable", func(t *testing.T) {
		list := &v1alpha1.BackgroundTask{
			ObjectMeta: metav1.ObjectMeta{Name: "items-list", Namespace: "default"},
			Spec: v1alpha1.BackgroundTaskSpec{TaskName: "mail", Items: &v1alpha1.ItemsSpec{List: []v1alpha1.ItemValue{
				{Raw: []byte(`{"to":"a"}`)}, {Raw: []byte(`{"to":"b","n":2}`)}, {Raw: []byte(`{"to":"c","tags":["x"]}`)},
			}}},
		}
		require.NoError(t, c.Create(ctx, list))
		got := &v1alpha1.BackgroundTask{}
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(list), got))
		require.Equal(t, int32(4), got.Spec.Items.Parallelism, "defaulted")
		require.JSONEq(t, `{"to":"b","n":2}`, string(got.Spec.Items.List[1].Raw), "values are kept as they are, unknown fields too")
		require.JSONEq(t, `{"to":"c","tags":["x"]}`, string(got.Spec.Items.List[2].Raw))

		got.Spec.Items.Parallelism = 16
		got.Spec.Items.RetryFailedGeneration = 1
		require.NoError(t, c.Update(ctx, got), "parallelism and retryFailedGeneration may change")
		got.Spec.Items.List = got.Spec.Items.List[:2]
		err := c.Update(ctx, got)
		require.Error(t, err)
		require.Contains(t, err.Error(), "items.count and items.list are immutable")
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(list), got))
		got.Spec.Items = nil
		err = c.Update(ctx, got)
		require.Error(t, err)
		require.Contains(t, err.Error(), "spec.items can be neither added nor removed")

		counted := &v1alpha1.BackgroundTask{
			ObjectMeta: metav1.ObjectMeta{Name: "items-count", Namespace: "default"},
			Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "mail", Items: &v1alpha1.ItemsSpec{Count: ptr.To[int32](100000)}},
		}
		require.NoError(t, c.Create(ctx, counted))
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(counted), got))
		got.Spec.Items.Count = ptr.To[int32](5)
		err = c.Update(ctx, got)
		require.Error(t, err)
		require.Contains(t, err.Error(), "items.count and items.list are immutable")

		for name, items := range map[string]*v1alpha1.ItemsSpec{
			"both":        {Count: ptr.To[int32](2), List: []v1alpha1.ItemValue{{Raw: []byte(`{}`)}}},
			"not objects": {List: []v1alpha1.ItemValue{{Raw: []byte(`1`)}}},
			"neither":     {},
			"too many":    {Count: ptr.To[int32](v1alpha1.MaxItems + 1)},
			"parallelism": {Count: ptr.To[int32](2), Parallelism: 1001},
		} {
			bad := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Name: "bad-items", Namespace: "default"},
				Spec: v1alpha1.BackgroundTaskSpec{TaskName: "mail", Items: items}}
			require.Error(t, c.Create(ctx, bad), name)
		}
	})

	t.Run("a schedule's template may change what the BackgroundTask may not", func(t *testing.T) {
		ts := &v1alpha1.TaskSchedule{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "default"},
			Spec: v1alpha1.TaskScheduleSpec{Schedule: "@daily", Template: v1alpha1.TaskTemplate{
				Spec: v1alpha1.BackgroundTaskSpec{TaskName: "mail", Items: &v1alpha1.ItemsSpec{Count: ptr.To[int32](10)}}}},
		}
		require.NoError(t, c.Create(ctx, ts))
		ts.Spec.Template.Spec.TaskName = "mail-v2"
		ts.Spec.Template.Spec.Items.Count = ptr.To[int32](20)
		require.NoError(t, c.Update(ctx, ts), "the next child is a new BackgroundTask")
	})

	t.Run("status subresource", func(t *testing.T) {
		got := &v1alpha1.BackgroundTask{}
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(bt), got))
		patch := client.MergeFrom(got.DeepCopy())
		got.Status.Phase = v1alpha1.PhaseRunning
		got.Status.Progress = "1/3"
		got.Spec.State = v1alpha1.DesiredPaused // ignored by the status subresource
		require.NoError(t, c.Status().Patch(ctx, got, patch))

		fresh := &v1alpha1.BackgroundTask{}
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(bt), fresh))
		require.Equal(t, v1alpha1.PhaseRunning, fresh.Status.Phase)
		require.Equal(t, "1/3", fresh.Status.Progress)
		require.Equal(t, v1alpha1.DesiredRunning, fresh.Spec.State, "spec must not change through /status")

		fresh.Status.Phase = "Exploded"
		err := c.Status().Update(ctx, fresh)
		require.Error(t, err)
		require.Contains(t, err.Error(), `status.phase: Unsupported value: "Exploded"`)
	})

	t.Run("kubectl explain shows the field docs", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		require.NoError(t, err, "kubectl is part of the test machine (README); install it to run these tests")
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		require.NoError(t, env.WriteKubeconfig(kubeconfig))
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "explain", "backgroundtask.spec").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "taskName is the registered task type to run")
		require.Contains(t, string(out), "restartGeneration restarts the task from scratch")
		for _, doc := range []string{"backoff sets the wait before each retry", "stallTimeout reports a running task",
			"pauseTimeout stops a task that stays Paused", "ttlSecondsAfterFinished deletes the BackgroundTask",
			"ttlSecondsAfterOutcome overrides ttlSecondsAfterFinished"} {
			require.Contains(t, string(out), doc)
		}
	})

	t.Run("kubectl get -o wide shows the replica a task is assigned to", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		require.NoError(t, err, "kubectl is part of the test machine (README); install it to run these tests")
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		require.NoError(t, env.WriteKubeconfig(kubeconfig))
		labelled := bt.DeepCopy()
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(bt), labelled))
		labelled.Labels = map[string]string{"tasks.taskpilot.dev/shard": "taskpilot-5d8f9-x2x7q"}
		require.NoError(t, c.Update(ctx, labelled))
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "bgt", "smoke", "-n", "default", "-o", "wide").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Regexp(t, `REPLICA`, string(out))
		require.Contains(t, string(out), "taskpilot-5d8f9-x2x7q")
		out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "bgt", "smoke", "-n", "default").CombinedOutput()
		require.NoError(t, err, string(out))
		require.NotContains(t, string(out), "REPLICA", "only with -o wide")
	})
}
