package chart

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/internal/helmchart"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

func chartDir() string { return filepath.Join(kubetest.RepoRoot(), "charts", "taskpilot") }

// valuesFiles are the chart's test values: none (the defaults), the example team's, then each
// file of ci/.
func valuesFiles(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(), "ci", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string][]string{"defaults": nil,
		// The example team's operator, installed with this chart beside taskpilot's.
		"examples/config/values.yaml": {filepath.Join(kubetest.RepoRoot(), "examples", "config", "values.yaml")}}
	for _, f := range files {
		out[filepath.Base(f)] = []string{f}
	}
	return out
}

// objects decodes rendered manifests.
func objects(t *testing.T, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			require.NoError(t, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, &u)
		}
	}
}

func renderChart(t *testing.T, vals map[string]any, rel helmchart.Release) []*unstructured.Unstructured {
	t.Helper()
	ms, err := helmchart.Render(context.Background(), chartDir(), vals, rel)
	require.NoError(t, err)
	return objects(t, []byte(helmchart.YAML(ms)))
}

// TestTheChartLintsRendersAndIsAccepted: with the default values and every ci/ values file, the
// chart lints without a warning, renders, and every object it renders is accepted by the API
// server (server-side dry-run: schema, CRD validation, admission).
func TestTheChartLintsRendersAndIsAccepted(t *testing.T) {
	c, err := client.New(kube.Config, client.Options{Scheme: kube.Scheme})
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(kube.Config)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for name, files := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			vals, err := helmchart.Values(files...)
			require.NoError(t, err)
			ns := "chart-" + utilrand.String(6)
			require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
			rel := helmchart.Release{Name: "tp-" + utilrand.String(4), Namespace: ns}
			require.NoError(t, helmchart.Lint(chartDir(), vals, rel))
			objs := renderChart(t, vals, rel)
			require.NotEmpty(t, objs)
			for _, o := range objs {
				dryRunApply(ctx, t, c, dyn, o)
			}
		})
	}
}

// dryRunApply applies o with server-side apply and dryRun=All: the API server validates it
// and stores nothing.
func dryRunApply(ctx context.Context, t *testing.T, c client.Client, dyn dynamic.Interface, o *unstructured.Unstructured) {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	require.NoError(t, err, "%s %s: the API server knows the kind", gvk, o.GetName())
	ri := dyn.Resource(m.Resource)
	var r dynamic.ResourceInterface = ri
	if ns := o.GetNamespace(); ns != "" {
		r = ri.Namespace(ns)
	}
	_, err = r.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "chart-test", Force: true, DryRun: []string{metav1.DryRunAll}})
	require.NoError(t, err, "%s %s/%s is refused", gvk.Kind, o.GetNamespace(), o.GetName())
}

// TestTheChartInstallsWhatKustomizeInstalls: the chart with its defaults (release taskpilot in
// taskpilot-system) and config/default make the same objects (but for the Namespace, which helm
// leaves to --create-namespace, and the migration, a Job in the chart and an init container in
// config/default), and each the same where it matters: the CRDs, RBAC rules and bindings, the
// pod's security context, probes, arguments, environment, resources and volumes, the Service,
// the disruption budget and the admission policies.
func TestTheChartInstallsWhatKustomizeInstalls(t *testing.T) {
	chartObjs := renderChart(t, nil, helmchart.Release{Name: "taskpilot", Namespace: "taskpilot-system"})
	out, err := exec.Command(kustomizeBin(t), "build", filepath.Join(kubetest.RepoRoot(), "config", "default")).CombinedOutput()
	require.NoError(t, err, string(out))
	kustomized := objects(t, out)

	key := func(o *unstructured.Unstructured) string { return o.GetKind() + "/" + o.GetName() }
	byKey := map[string]*unstructured.Unstructured{}
	for _, o := range chartObjs {
		byKey[key(o)] = o
	}
	var chartOnly []string
	for k := range byKey {
		if !slices.ContainsFunc(kustomized, func(o *unstructured.Unstructured) bool { return key(o) == k }) {
			chartOnly = append(chartOnly, k)
		}
	}
	require.Equal(t, []string{"Job/taskpilot-migrate"}, chartOnly, "objects only the chart makes")

	for _, k := range kustomized {
		if k.GetKind() == "Namespace" {
			continue
		}
		h := byKey[key(k)]
		require.NotNil(t, h, "the chart makes no %s", key(k))
		require.Equal(t, k.GetNamespace(), h.GetNamespace(), key(k))
		for _, field := range comparedFields(k.GetKind()) {
			want, _, _ := unstructured.NestedFieldNoCopy(k.Object, field...)
			got, _, _ := unstructured.NestedFieldNoCopy(h.Object, field...)
			require.Equal(t, want, got, "%s: %s differs between config/default and the chart", key(k), strings.Join(field, "."))
		}
		for l, v := range k.GetLabels() {
			if strings.HasPrefix(l, "rbac.authorization.k8s.io/") {
				require.Equal(t, v, h.GetLabels()[l], "%s: label %s", key(k), l)
			}
		}
	}

	// The pod: everything but the image (the chart's is a release's, kustomize's a placeholder)
	// and the migration.
	k := find(t, kustomized, "Deployment", "taskpilot-controller-manager")
	h := find(t, chartObjs, "Deployment", "taskpilot-controller-manager")
	kpod, _, _ := unstructured.NestedMap(k.Object, "spec", "template")
	hpod, _, _ := unstructured.NestedMap(h.Object, "spec", "template")
	for _, pod := range []map[string]any{kpod, hpod} {
		spec := pod["spec"].(map[string]any)
		delete(spec, "initContainers")
		for _, ctr := range spec["containers"].([]any) {
			delete(ctr.(map[string]any), "image")
			delete(ctr.(map[string]any), "imagePullPolicy")
		}
	}
	require.Equal(t, kpod, hpod, "the operator's pod differs between config/default and the chart")
	for _, f := range []string{"replicas", "selector", "strategy"} {
		require.Equal(t, k.Object["spec"].(map[string]any)[f], h.Object["spec"].(map[string]any)[f], "Deployment spec.%s", f)
	}

	// What both run to migrate: `taskpilot migrate` as the owner's URL, with the same hardening.
	initCtr, _, _ := unstructured.NestedSlice(k.Object, "spec", "template", "spec", "initContainers")
	require.Len(t, initCtr, 1)
	job := find(t, chartObjs, "Job", "taskpilot-migrate")
	require.Equal(t, "pre-install,pre-upgrade", job.GetAnnotations()["helm.sh/hook"])
	jobCtr, _, _ := unstructured.NestedSlice(job.Object, "spec", "template", "spec", "containers")
	require.Equal(t, initCtr[0].(map[string]any)["args"], jobCtr[0].(map[string]any)["args"])
	require.Equal(t, initCtr[0].(map[string]any)["securityContext"], jobCtr[0].(map[string]any)["securityContext"])
}

// comparedFields are what must agree between the two renderings, by kind.
func comparedFields(kind string) [][]string {
	switch kind {
	case "CustomResourceDefinition", "Service", "PodDisruptionBudget", "ValidatingAdmissionPolicy",
		"ValidatingAdmissionPolicyBinding":
		return [][]string{{"spec"}}
	case "ClusterRole", "Role":
		return [][]string{{"rules"}}
	case "ClusterRoleBinding", "RoleBinding":
		return [][]string{{"roleRef"}, {"subjects"}}
	}
	return nil
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the rendered manifests", kind, name)
	return nil
}

// kustomizeBin is the pinned kustomize `make kustomize` installs (KUSTOMIZE overrides).
func kustomizeBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUSTOMIZE"); p != "" {
		return p
	}
	p := filepath.Join(kubetest.RepoRoot(), "bin", "kustomize")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no kustomize at %s: run `make kustomize`", p)
	}
	return p
}

// TestTheChartNamesItsNamespaceAndDeployment: objects are in the release's namespace, the
// policies let that namespace's ServiceAccounts write the assignment labels and read its
// catalog, and a release with another deployment name runs as that deployment.
func TestTheChartNamesItsNamespaceAndDeployment(t *testing.T) {
	objs := renderChart(t, map[string]any{"deploymentName": "reports"}, helmchart.Release{Name: "reports", Namespace: "team-a"})
	for _, o := range objs {
		if o.GetNamespace() != "" {
			require.Equal(t, "team-a", o.GetNamespace(), "%s %s", o.GetKind(), o.GetName())
		}
	}
	dep := find(t, objs, "Deployment", "reports-taskpilot-controller-manager")
	ctrs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	require.Contains(t, ctrs[0].(map[string]any)["args"], "--deployment=reports")
	sel, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "selector", "matchLabels")
	require.Equal(t, "reports", sel["app.kubernetes.io/instance"])
	binding := find(t, objs, "ValidatingAdmissionPolicyBinding", "task-types.tasks.taskpilot.dev")
	ref, _, _ := unstructured.NestedStringMap(binding.Object, "spec", "paramRef")
	require.Equal(t, "team-a", ref["namespace"])
	policy := find(t, objs, "ValidatingAdmissionPolicy", "assignment.tasks.taskpilot.dev")
	require.Contains(t, yamlOf(t, policy), "system:serviceaccounts:team-a")
}

// TestTheChartRefusesWhatCannotRun: sharding without leader election, and the admission
// policies on a cluster older than 1.30, fail the render with a message saying what to set.
func TestTheChartRefusesWhatCannotRun(t *testing.T) {
	_, err := helmchart.Render(context.Background(), chartDir(), map[string]any{"sharding": true, "leaderElection": false},
		helmchart.Release{Name: "taskpilot", Namespace: "ns"})
	require.ErrorContains(t, err, "sharding needs leaderElection")
	_, err = helmchart.Render(context.Background(), chartDir(), nil,
		helmchart.Release{Name: "taskpilot", Namespace: "ns", KubeVersion: "v1.29.4"})
	require.ErrorContains(t, err, "admission.enabled=false")
	_, err = helmchart.Render(context.Background(), chartDir(), map[string]any{"admission": map[string]any{"enabled": false}},
		helmchart.Release{Name: "taskpilot", Namespace: "ns", KubeVersion: "v1.29.4"})
	require.NoError(t, err)
	_, err = helmchart.Render(context.Background(), chartDir(), nil,
		helmchart.Release{Name: "taskpilot", Namespace: "ns", KubeVersion: "v1.27.0"})
	require.ErrorContains(t, err, "kubeVersion")
}

// TestTheChartPackagesWithTheReleaseVersion: `make release` packages the chart with the
// release's version and appVersion (which the image tag defaults to), and refuses a version
// that is not semantic.
func TestTheChartPackagesWithTheReleaseVersion(t *testing.T) {
	dir := t.TempDir()
	p, err := helmchart.Package(chartDir(), "v1.2.3", "v1.2.3", dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "taskpilot-1.2.3.tgz"), p)
	version, appVersion, err := helmchart.Versions(p)
	require.NoError(t, err)
	require.Equal(t, "1.2.3", version)
	require.Equal(t, "v1.2.3", appVersion)
	_, err = helmchart.Package(chartDir(), "one", "v1", dir)
	require.ErrorContains(t, err, "semantic version")
}

func yamlOf(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	b, err := o.MarshalJSON()
	require.NoError(t, err)
	return string(b)
}
