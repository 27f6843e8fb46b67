package monitoring

import (
	"fmt"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// GroupName is the rule group of taskpilot's alerts.
const GroupName = "taskpilot"

// Groups are the alerts as one rule group.
func Groups() []monitoringv1.RuleGroup {
	var rules []monitoringv1.Rule
	for _, a := range Alerts() {
		r := monitoringv1.Rule{
			Alert:  a.Name,
			Expr:   intstr.FromString(a.Expr),
			Labels: map[string]string{"severity": a.Severity},
			Annotations: map[string]string{
				"summary":     a.Summary,
				"description": a.Description,
				"runbook_url": a.RunbookURL(),
			},
		}
		if a.For > 0 {
			r.For = ptr.To(monitoringv1.Duration(promDuration(a.For)))
		}
		rules = append(rules, r)
	}
	return []monitoringv1.RuleGroup{{Name: GroupName, Rules: rules}}
}

// PrometheusRule is the prometheus-operator object of the alerts (config/monitoring, named
// taskpilot-alerts once kustomize adds the prefix).
func PrometheusRule() *monitoringv1.PrometheusRule {
	return &monitoringv1.PrometheusRule{
		TypeMeta: metav1.TypeMeta{APIVersion: monitoringv1.SchemeGroupVersion.String(), Kind: monitoringv1.PrometheusRuleKind},
		ObjectMeta: metav1.ObjectMeta{Name: "alerts", Namespace: "system",
			Labels: map[string]string{"app.kubernetes.io/name": "taskpilot", "app.kubernetes.io/component": "manager"}},
		Spec: monitoringv1.PrometheusRuleSpec{Groups: Groups()},
	}
}

// ServiceMonitor scrapes the metrics Service over HTTPS with Prometheus's service-account
// token, which the API server authenticates and authorizes (bind the metrics-reader
// ClusterRole to Prometheus's service account). The serving certificate is the operator's
// self-signed one unless you give it one, hence insecureSkipVerify.
func ServiceMonitor() *monitoringv1.ServiceMonitor {
	return &monitoringv1.ServiceMonitor{
		TypeMeta: metav1.TypeMeta{APIVersion: monitoringv1.SchemeGroupVersion.String(), Kind: monitoringv1.ServiceMonitorsKind},
		ObjectMeta: metav1.ObjectMeta{Name: "metrics", Namespace: "system",
			Labels: map[string]string{"app.kubernetes.io/name": "taskpilot", "app.kubernetes.io/component": "manager"}},
		Spec: monitoringv1.ServiceMonitorSpec{
			// The metrics Service of config/manager (the instance is the deployment's name).
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "taskpilot",
				"app.kubernetes.io/component": "manager", "app.kubernetes.io/instance": "taskpilot"}},
			Endpoints: []monitoringv1.Endpoint{{
				Port:            "https-metrics",
				Path:            "/metrics",
				Scheme:          ptr.To(monitoringv1.Scheme("https")),
				Interval:        "30s",
				BearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
				HTTPConfigWithProxyAndTLSFiles: monitoringv1.HTTPConfigWithProxyAndTLSFiles{
					HTTPConfigWithTLSFiles: monitoringv1.HTTPConfigWithTLSFiles{
						TLSConfig: &monitoringv1.TLSConfig{SafeTLSConfig: monitoringv1.SafeTLSConfig{InsecureSkipVerify: ptr.To(true)}},
					},
				},
			}},
		},
	}
}

// promDuration writes d as Prometheus does (2m, 1h30m, 45s).
func promDuration(d time.Duration) string {
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}
