package operator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/tasktype"
	"github.com/taskpilot/taskpilot/runner/builtin"
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
	w.start("builtins", builtin.Register)
	require.Eventually(t, func() bool {
		var cm corev1.ConfigMap
		return w.c.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: tasktype.CatalogName}, &cm) == nil && cm.Data["countdown"] != ""
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

// TestOnlyTheOperatorSetsTheAssignmentLabels: a tenant who may edit BackgroundTasks in its
// namespace cannot set the sharding labels (which would force endless hand-overs), while it
// can still drive its tasks, and the operator's ServiceAccount can.
func TestOnlyTheOperatorSetsTheAssignmentLabels(t *testing.T) {
	w := newWorld(t)
	require.NoError(t, kubetest.InstallPolicy(w.ctx, w.c, "assignment_policy.yaml", "", "-"+w.ns, map[string]string{"taskpilot-test": w.ns}))
	tenant := w.userClient("tenant", nil)
	operatorSA := w.userClient("system:serviceaccount:taskpilot-system:taskpilot-controller-manager",
		[]string{"system:serviceaccounts", "system:serviceaccounts:taskpilot-system"})

	bt := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "mine"},
		Spec: v1alpha1.BackgroundTaskSpec{TaskName: "countdown", State: v1alpha1.DesiredPaused}}
	require.NoError(t, tenant.Create(w.ctx, bt), "the tenant creates its task")
	label := func(c client.Client, patch string) error {
		return c.Patch(w.ctx, &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "mine"}},
			client.RawPatch(types.MergePatchType, []byte(patch)))
	}
	var err error
	tries := 0
	require.Eventually(t, func() bool { // the policy takes effect a moment after it is created
		tries++ // a new value each time: setting the value a label already has changes nothing
		err = label(tenant, fmt.Sprintf(`{"metadata":{"labels":{"tasks.taskpilot.dev/shard":"r-evil-%d"}}}`, tries))
		return err != nil
	}, waitTimeout, 200*time.Millisecond)
	require.ErrorContains(t, err, "metadata.labels.tasks.taskpilot.dev/shard: the assignment labels are written by the taskpilot operator only")
	require.ErrorContains(t, label(tenant, `{"metadata":{"labels":{"tasks.taskpilot.dev/drain":"true"}}}`), "tasks.taskpilot.dev/drain")
	withLabel := bt.DeepCopy()
	withLabel.Name, withLabel.ResourceVersion, withLabel.Labels = "sneaky", "", map[string]string{"tasks.taskpilot.dev/shard": "r-evil"}
	require.ErrorContains(t, tenant.Create(w.ctx, withLabel), "assignment labels", "not at create either")

	require.NoError(t, label(tenant, `{"spec":{"state":"Stopped"},"metadata":{"labels":{"team":"a"}}}`), "its own labels and spec are the tenant's")
	require.NoError(t, label(operatorSA, `{"metadata":{"labels":{"tasks.taskpilot.dev/shard":"r-a"}}}`), "the operator assigns")
	require.NoError(t, label(operatorSA, `{"metadata":{"labels":{"tasks.taskpilot.dev/drain":"true"}}}`))
	require.ErrorContains(t, label(tenant, `{"metadata":{"labels":{"tasks.taskpilot.dev/shard":null}}}`), "assignment labels",
		"nor remove them")
}

// userClient is a client of an authenticated user (with groups) who may edit BackgroundTasks in
// the test's namespace, as the Role config/rbac gives tenants.
func (w *world) userClient(name string, groups []string) client.Client {
	w.t.Helper()
	user, err := kube.Environment.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	require.NoError(w.t, err)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "edit-tasks-" + rand.String(4)},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.Group}, Resources: []string{"backgroundtasks"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}}}
	require.NoError(w.t, w.c.Create(w.ctx, role))
	require.NoError(w.t, w.c.Create(w.ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}}))
	c, err := client.New(user.Config(), client.Options{Scheme: kube.Scheme})
	require.NoError(w.t, err)
	return c
}
