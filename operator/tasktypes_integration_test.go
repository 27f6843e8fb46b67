package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/tasktype"
	"github.com/taskpilot/taskpilot/operator"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/builtin"
)

// SharedParams are the params of a type two deployments of the test serve: a conflict.
type SharedParams struct{}

// TaskName names the type.
func (SharedParams) TaskName() string { return "served-twice" }

func newShared(SharedParams) (runner.Task[ReportResult], error) {
	return &report{p: ReportParams{Month: "2026-01"}}, nil
}

// TestTwoDeploymentsEachRunTheirOwnTypes: one cluster, two operators built with the public
// package, each with its own task types. Each runs only its types, publishes them as TaskTypes
// (a type both serve is a conflict), and a task of a type nobody serves fails once.
func TestTwoDeploymentsEachRunTheirOwnTypes(t *testing.T) {
	w := newWorld(t)
	w.start("builtins", func(reg *runner.Registry) error {
		return errors.Join(builtin.Register(reg), runner.Register(reg, "shared", newShared))
	})
	w.start("reports", func(reg *runner.Registry) error {
		return errors.Join(runner.Register(reg, "Builds the monthly report", newReport), runner.Register(reg, "shared", newShared))
	})
	cl, err := operator.NewClient(w.ctx, kube.Config, operator.ClientOptions{Namespace: w.ns, DatabaseURL: w.dbURL})
	require.NoError(t, err)
	t.Cleanup(cl.Close)

	nov, created, err := cl.Enqueue(w.ctx, "november", ReportParams{Month: "2026-11"},
		operator.WithLabels(map[string]string{"team": "finance"}))
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := cl.Enqueue(w.ctx, "november", ReportParams{Month: "2026-11"})
	require.NoError(t, err)
	require.False(t, created, "enqueueing the same name again is idempotent")
	require.Equal(t, nov.UID, again.UID)
	_, _, err = cl.Enqueue(w.ctx, "november", builtin.NoopParams{})
	require.ErrorIs(t, err, operator.ErrOtherTaskType)

	_, _, err = cl.Enqueue(w.ctx, "count", builtin.CountdownParams{From: 2, Interval: runner.Duration(10 * time.Millisecond)})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(w.ctx, waitTimeout)
	defer cancel()
	done, err := cl.Wait(ctx, "november")
	require.NoError(t, err)
	require.Equal(t, v1alpha1.PhaseFinished, done.Status.Phase, done.Status.Message)
	require.JSONEq(t, `{"report":"s3://reports/2026-11.pdf"}`, string(done.Status.Result.Raw))
	counted, err := cl.Wait(ctx, "count", v1alpha1.PhaseFinished)
	require.NoError(t, err)
	require.Equal(t, v1alpha1.PhaseFinished, counted.Status.Phase)

	require.Equal(t, "reports-0", w.owner("november"), "the deployment that serves monthly-report ran it")
	require.Equal(t, "builtins-0", w.owner("count"))
	history, err := cl.History(w.ctx, "november")
	require.NoError(t, err)
	var path []v1alpha1.Phase
	for _, h := range history {
		path = append(path, h.To)
	}
	require.Equal(t, []v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhaseRunning, v1alpha1.PhaseFinished}, path)

	// What each deployment serves is visible in the cluster.
	report := w.waitTaskType("monthly-report", func(tt *v1alpha1.TaskType) bool { return len(w.mine(tt)) == 1 })
	entry := w.mine(report)[0]
	require.Equal(t, "reports", entry.Deployment)
	require.Equal(t, "Builds the monthly report", entry.Description)
	require.JSONEq(t, `{"month":"2026-11"}`, string(entry.Example.Raw))
	var schema map[string]any
	require.NoError(t, json.Unmarshal(entry.ParamsSchema.Raw, &schema))
	require.Contains(t, schema["properties"], "month")
	countdown := w.waitTaskType("countdown", func(tt *v1alpha1.TaskType) bool { return len(w.mine(tt)) == 1 })
	require.Equal(t, "builtins", w.mine(countdown)[0].Deployment)
	shared := w.waitTaskType("served-twice", func(tt *v1alpha1.TaskType) bool {
		return len(w.mine(tt)) == 2 && meta.IsStatusConditionTrue(tt.Status.Conditions, v1alpha1.ConditionConflict)
	})
	conflict := meta.FindStatusCondition(shared.Status.Conditions, v1alpha1.ConditionConflict)
	require.Contains(t, conflict.Message, w.ns+"/builtins")
	require.Contains(t, conflict.Message, w.ns+"/reports")

	// The task-type catalog the admission policy reads holds both deployments' types.
	var catalog corev1.ConfigMap
	require.NoError(t, w.c.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: tasktype.CatalogName}, &catalog))
	require.Equal(t, "month", catalog.Data["monthly-report"])
	require.Equal(t, "from,interval,checkpointEvery", catalog.Data["countdown"])
	require.Empty(t, catalog.Data["noop"], "noop takes no params")

	// A type nobody serves is failed once, by one of them; the other stays silent.
	bt := &v1alpha1.BackgroundTask{}
	bt.Namespace, bt.Name, bt.Spec.TaskName = w.ns, "typo", "montly-report"
	require.NoError(t, w.c.Create(w.ctx, bt))
	failed, err := cl.Wait(ctx, "typo")
	require.NoError(t, err)
	require.Equal(t, v1alpha1.PhaseFailed, failed.Status.Phase)
	ready := meta.FindStatusCondition(failed.Status.Conditions, v1alpha1.ConditionReady)
	require.NotNil(t, ready)
	require.Equal(t, lifecycle.ReasonUnknownTaskType, ready.Reason)
	history, err = cl.History(w.ctx, "typo")
	require.NoError(t, err)
	require.Len(t, history, 2, "created, then failed once: %+v", history)
	var events corev1.EventList
	require.NoError(t, w.c.List(w.ctx, &events, client.InNamespace(w.ns)))
	for _, e := range events.Items {
		require.NotEqual(t, "OwnedElsewhere", e.Reason, "the deployment that did not record it says nothing: %s", e.Message)
	}
}

// mine are the entries of tt published by this test's deployments.
func (w *world) mine(tt *v1alpha1.TaskType) []v1alpha1.TaskTypeServer {
	var out []v1alpha1.TaskTypeServer
	for _, s := range tt.Status.ServedBy {
		if s.Namespace == w.ns {
			out = append(out, s)
		}
	}
	return out
}

// waitTaskType waits until the TaskType name satisfies ok.
func (w *world) waitTaskType(name string, ok func(*v1alpha1.TaskType) bool) *v1alpha1.TaskType {
	w.t.Helper()
	var tt v1alpha1.TaskType
	require.Eventually(w.t, func() bool {
		return w.c.Get(w.ctx, client.ObjectKey{Name: name}, &tt) == nil && ok(&tt)
	}, waitTimeout, 100*time.Millisecond, "TaskType %s: %+v", name, &tt.Status)
	return &tt
}

// owner is the row's owner of the task name (the identity of the operator that ran it).
func (w *world) owner(name string) string {
	w.t.Helper()
	conn, err := pgx.Connect(w.ctx, w.dbURL)
	require.NoError(w.t, err)
	defer func() { _ = conn.Close(w.ctx) }()
	var owner string
	require.NoError(w.t, conn.QueryRow(w.ctx, `SELECT coalesce(owner, '') FROM background_tasks WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL`,
		w.ns, name).Scan(&owner))
	return owner
}
