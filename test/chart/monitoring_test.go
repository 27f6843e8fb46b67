package chart

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/taskpilot/taskpilot/internal/helmchart"
	"github.com/taskpilot/taskpilot/test/kubetest"
)

// TestTheChartMonitorsAsConfigMonitoringDoes: with its monitoring values on, the chart makes
// the ServiceMonitor, PrometheusRule and dashboard ConfigMap that kustomize builds from
// config/monitoring, and passes the tracing settings to the operator.
func TestTheChartMonitorsAsConfigMonitoringDoes(t *testing.T) {
	vals := map[string]any{
		"metrics": map[string]any{
			"serviceMonitor": map[string]any{"enabled": true},
			"prometheusRule": map[string]any{"enabled": true},
			"dashboard":      map[string]any{"enabled": true},
		},
		"tracing": map[string]any{"endpoint": "http://otel-collector:4317", "sampler": "parentbased_traceidratio", "samplerArg": "0.1"},
	}
	chartObjs := renderChart(t, vals, helmchart.Release{Name: "taskpilot", Namespace: "taskpilot-system"})
	out, err := exec.Command(kustomizeBin(t), "build", filepath.Join(kubetest.RepoRoot(), "config", "monitoring")).CombinedOutput()
	require.NoError(t, err, string(out))
	kustomized := objects(t, out)
	require.Len(t, kustomized, 3)
	for _, k := range kustomized {
		h := find(t, chartObjs, k.GetKind(), k.GetName())
		require.Equal(t, k.GetNamespace(), h.GetNamespace(), k.GetName())
		field := []string{"spec"}
		if k.GetKind() == "ConfigMap" {
			field = []string{"data"}
		}
		want, _, _ := unstructured.NestedFieldNoCopy(k.Object, field...)
		got, _, _ := unstructured.NestedFieldNoCopy(h.Object, field...)
		require.Equal(t, want, got, "%s/%s: the chart and config/monitoring differ", k.GetKind(), k.GetName())
	}
	dep := find(t, chartObjs, "Deployment", "taskpilot-controller-manager")
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	env := map[string]string{}
	for _, e := range containers[0].(map[string]any)["env"].([]any) {
		m := e.(map[string]any)
		if v, ok := m["value"].(string); ok {
			env[m["name"].(string)] = v
		}
	}
	require.Equal(t, "http://otel-collector:4317", env["OTEL_EXPORTER_OTLP_ENDPOINT"])
	require.Equal(t, "parentbased_traceidratio", env["OTEL_TRACES_SAMPLER"])
	require.Equal(t, "0.1", env["OTEL_TRACES_SAMPLER_ARG"])

	plain := renderChart(t, nil, helmchart.Release{Name: "taskpilot", Namespace: "taskpilot-system"})
	for _, o := range plain {
		require.NotContains(t, []string{"ServiceMonitor", "PrometheusRule"}, o.GetKind(), "off by default: the CRDs may not exist")
	}
}
