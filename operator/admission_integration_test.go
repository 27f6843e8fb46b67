package operator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// TestAdmissionRefusesWhatNoOperatorRuns installs the ValidatingAdmissionPolicy of
// config/admission (bound to this test's namespace and catalog) and checks that the API server
// refuses, at create, a task of a type no operator serves and a params field its type does not
// have, with a message that names the allowed types or the bad field; and that a task created
// before its params were checked can still be changed in other ways.
func TestAdmissionRefusesWhatNoOperatorRuns(t *testing.T) {
	w := newWorld(t)
	require.NoError(t, kubetest.InstallTaskTypePolicy(w.ctx, w.c, w.ns, "-"+w.ns, map[string]string{"taskpilot-test": w.ns}))
	w.start("builtins", runner.RegisterBuiltins)
	require.Eventually(t, func() bool {
		var cm corev1.ConfigMap
		return w.c.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: controllers.CatalogName}, &cm) == nil && cm.Data["countdown"] != ""
	}, waitTimeout, 100*time.Millisecond, "the operator publishes its catalog")

	task := func(name, taskName, params string) *v1alpha1.BackgroundTask {
		bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
			Spec: v1alpha1.BackgroundTaskSpec{TaskName: taskName}}
		if params != "" {
			bt.Spec.Params = &runtime.RawExtension{Raw: []byte(params)}
		}
		return bt
	}
	// The policy takes effect a moment after it is created: wait for the first refusal.
	var err error
	require.Eventually(t, func() bool {
		err = w.c.Create(w.ctx, task("nope", "no-such-type", ""))
		if err == nil {
			require.NoError(t, w.c.Delete(w.ctx, task("nope", "", "")))
		}
		return err != nil
	}, waitTimeout, 200*time.Millisecond)
	require.ErrorContains(t, err, `spec.taskName: no taskpilot operator in this cluster serves the task type "no-such-type"; the served types are:`)
	for _, served := range []string{"checksum", "countdown", "noop", "sleep"} {
		require.ErrorContains(t, err, served)
	}

	err = w.c.Create(w.ctx, task("typo", "countdown", `{"from":3,"intervall":"1s"}`))
	require.ErrorContains(t, err, `spec.params.intervall: the task type "countdown" has no such field; its fields are: from, interval, checkpointEvery`)
	err = w.c.Create(w.ctx, task("none", "noop", `{"x":1}`))
	require.ErrorContains(t, err, `spec.params.x: the task type "noop" has no such field; its fields are: (none)`)

	err = w.c.Create(w.ctx, task("huge", "countdown", `{"from":3,"interval":"`+strings.Repeat("9", 40<<10)+`"}`))
	require.ErrorContains(t, err, `spec.params.interval: too large; params are at most 32 KiB`)

	good := task("good", "countdown", `{"from":1000,"interval":"1s"}`)
	require.NoError(t, w.c.Create(w.ctx, good))
	require.NoError(t, w.c.Patch(w.ctx, good, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"state":"Stopped"}}`))),
		"changing the state of an accepted task is not checked again")
	err = w.c.Patch(w.ctx, good, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"params":{"from":2,"bogus":true}}}`)))
	require.ErrorContains(t, err, "spec.params.bogus", "changed params are checked again")
}
