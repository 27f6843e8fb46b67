package kubetest

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// Main is the body of a TestMain for a package of integration tests: under -short the tests
// run without a control plane (they skip themselves); otherwise it starts one, stores it in
// *env, runs inside (the tests, or more set-up such as pgtest.Main) and stops it. It returns
// the exit code for os.Exit.
//
//	func TestMain(m *testing.M) {
//		os.Exit(kubetest.Main(m, &kube, func() int { return pgtest.Main(m, &pg) }))
//	}
func Main(m *testing.M, env **Env, inside func() int) int {
	flag.Parse() // testing.Short needs the flags parsed; m.Run would parse them later
	if testing.Short() {
		return m.Run()
	}
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*env = e
	code := inside()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the control plane:", err)
	}
	return code
}
