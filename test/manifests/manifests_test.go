// Package manifests checks what `make deploy` applies: it renders config/default with the
// pinned kustomize and asserts a cluster admin would accept it.
package manifests

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// kustomize returns the pinned binary installed by `make kustomize` (KUSTOMIZE overrides).
func kustomize(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUSTOMIZE"); p != "" {
		return p
	}
	p := filepath.Join(kubetest.RepoRoot(), "bin", "kustomize")
	if _, err := os.Stat(p); err != nil {
		if testing.Short() {
			t.Skip("kustomize not installed (make kustomize)")
		}
		t.Fatalf("no kustomize at %s: run `make kustomize` (it installs the pinned version from the Go module proxy)", p)
	}
	return p
}

func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command(kustomize(t), "build", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	var objs []*unstructured.Unstructured
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, &u)
		}
	}
	return objs
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

func TestDefaultDeploymentIsHardened(t *testing.T) {
	objs := render(t, filepath.Join(kubetest.RepoRoot(), "config", "default"))

	clusterScoped := []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
	for _, o := range objs {
		if slices.Contains(clusterScoped, o.GetKind()) {
			require.Empty(t, o.GetNamespace(), "%s %s is cluster-scoped", o.GetKind(), o.GetName())
		} else {
			require.Equal(t, "taskpilot-system", o.GetNamespace(), "%s %s", o.GetKind(), o.GetName())
		}
	}
	find(t, objs, "CustomResourceDefinition", "backgroundtasks.tasks.taskpilot.dev")
	find(t, objs, "ClusterRole", "taskpilot-manager-role")
	find(t, objs, "Service", "taskpilot-controller-manager-metrics")
	find(t, objs, "PodDisruptionBudget", "taskpilot-controller-manager")
	find(t, objs, "Role", "taskpilot-leader-election-role")
	find(t, objs, "CustomResourceDefinition", "tasktypes.tasks.taskpilot.dev")
	find(t, objs, "Role", "taskpilot-catalog-role")
	binding := find(t, objs, "ValidatingAdmissionPolicyBinding", "task-types.tasks.taskpilot.dev")
	ref, _, _ := unstructured.NestedStringMap(binding.Object, "spec", "paramRef")
	require.Equal(t, "taskpilot-system", ref["namespace"], "the catalog is in the operator's namespace")
	require.Equal(t, "taskpilot-task-types", ref["name"])
	find(t, objs, "ValidatingAdmissionPolicyBinding", "assignment.tasks.taskpilot.dev")

	var dep appsv1.Deployment
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, "Deployment", "taskpilot-controller-manager").Object, &dep))
	pod := dep.Spec.Template.Spec
	require.Equal(t, "taskpilot-controller-manager", pod.ServiceAccountName)
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	require.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.Contains(t, c.Args, "--leader-elect=true")
	require.NotNil(t, c.SecurityContext)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	require.NotNil(t, c.LivenessProbe)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.False(t, c.Resources.Requests.Memory().IsZero())
	require.False(t, c.Resources.Limits.Memory().IsZero())
	require.Equal(t, "taskpilot-database", c.Env[0].ValueFrom.SecretKeyRef.Name, "DATABASE_URL comes from a Secret")

	// Metrics: HTTPS behind the API server's authentication (the default of --metrics-secure),
	// whose self-signed certificate needs a writable /tmp on the read-only root filesystem.
	require.NotContains(t, c.Args, "--metrics-secure=false")
	require.Contains(t, c.Args, "--metrics-bind-address=:8443")
	require.True(t, slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/tmp" }),
		"the metrics server writes its certificate under /tmp")
	reader := find(t, objs, "ClusterRole", "taskpilot-metrics-reader")
	rules, _, _ := unstructured.NestedSlice(reader.Object, "rules")
	require.Equal(t, []any{"/metrics"}, rules[0].(map[string]any)["nonResourceURLs"])
	role := find(t, objs, "ClusterRole", "taskpilot-manager-role")
	rules, _, _ = unstructured.NestedSlice(role.Object, "rules")
	var reviews []string
	for _, r := range rules {
		res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
		reviews = append(reviews, res...)
	}
	require.Subset(t, reviews, []string{"tokenreviews", "subjectaccessreviews"}, "the operator asks the API server who scrapes")
}

func TestExampleOverlayGeneratesTheSecret(t *testing.T) {
	// Render a copy of config/ with a throwaway database-url file (the real one is gitignored).
	root := kubetest.RepoRoot()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(dir, "config"), os.DirFS(filepath.Join(root, "config"))))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config", "overlays", "example", "database-url"), []byte("postgres://u:p@db:5432/t"), 0o600))
	objs := render(t, filepath.Join(dir, "config", "overlays", "example"))
	secret := find(t, objs, "Secret", "taskpilot-database")
	require.Equal(t, "taskpilot-system", secret.GetNamespace())
	find(t, objs, "Deployment", "taskpilot-controller-manager")
}

func TestShardedOverlayRunsThreeActiveReplicas(t *testing.T) {
	objs := render(t, filepath.Join(kubetest.RepoRoot(), "config", "overlays", "sharded"))
	var dep appsv1.Deployment
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, "Deployment", "taskpilot-controller-manager").Object, &dep))
	require.Equal(t, int32(3), *dep.Spec.Replicas)
	args := dep.Spec.Template.Spec.Containers[0].Args
	require.Contains(t, args, "--sharding")
	require.Contains(t, args, "--leader-elect=true", "the sharder is elected")
	pdb := find(t, objs, "PodDisruptionBudget", "taskpilot-controller-manager")
	spec := pdb.Object["spec"].(map[string]any)
	require.EqualValues(t, 1, spec["maxUnavailable"], "one replica at a time may be drained")
	require.NotContains(t, spec, "minAvailable")
}

// TestTheExampleOverlayRunsBesideTaskpilot: examples/config deploys a team's operator from
// taskpilot's config/ with only its image, its flags and its own pod selector changed.
func TestTheExampleOverlayRunsBesideTaskpilot(t *testing.T) {
	objs := render(t, filepath.Join(kubetest.RepoRoot(), "examples", "config"))
	var dep appsv1.Deployment
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, "Deployment", "linkcheck-taskpilot-controller-manager").Object, &dep))
	c := dep.Spec.Template.Spec.Containers[0]
	require.Equal(t, "registry.example/linkcheck-operator:v0.1.0", c.Image)
	require.Contains(t, c.Args, "--deployment=linkcheck")
	require.Equal(t, "taskpilot-system", dep.Namespace, "next to taskpilot, sharing the task-type catalog")
	require.Equal(t, "linkcheck", dep.Spec.Selector.MatchLabels["app.kubernetes.io/instance"])
	svc := find(t, objs, "Service", "linkcheck-taskpilot-controller-manager-metrics")
	sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	require.Equal(t, "linkcheck", sel["app.kubernetes.io/instance"], "its Service selects its own pods only")

	var base appsv1.Deployment
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(
		find(t, render(t, filepath.Join(kubetest.RepoRoot(), "config", "default")), "Deployment", "taskpilot-controller-manager").Object, &base))
	require.Equal(t, "taskpilot", base.Spec.Selector.MatchLabels["app.kubernetes.io/instance"])
}

// TestTheImageBuildContextHoldsEveryPackageTheOperatorImports: the Dockerfile copies the module
// minus what .dockerignore keeps out; no package the operator binary imports may be among it,
// or the image (built elsewhere, no Docker engine here) would not compile.
func TestTheImageBuildContextHoldsEveryPackageTheOperatorImports(t *testing.T) {
	root := kubetest.RepoRoot()
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	var excluded []string
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "*") {
			continue
		}
		excluded = append(excluded, strings.TrimSuffix(line, "/")+"/")
	}
	require.Contains(t, excluded, "bin/", ".dockerignore keeps the tools and the control plane out")
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", ".")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err)
	var ours int
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, downloaded in the image
		}
		ours++
		for _, ex := range excluded {
			require.False(t, strings.HasPrefix(rel+"/", ex), "the operator imports %s, which .dockerignore keeps out of the image", rel)
		}
	}
	require.Greater(t, ours, 5, "the operator's own packages were listed")
}
