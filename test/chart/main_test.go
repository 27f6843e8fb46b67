// Package chart tests charts/taskpilot: it lints and renders the chart with the Helm library
// for the default values and every values file in its ci/ directory, applies every rendered
// object to a real API server with server-side dry-run (which validates it against the CRDs and
// the built-in schemas), and compares the default rendering, object by object, with what
// kustomize makes of config/default: the two install paths must install the same operator.
package chart

import (
	"os"
	"testing"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

var kube *kubetest.Env

func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m, &kube, m.Run))
}
