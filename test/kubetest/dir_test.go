package kubetest_test

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

func TestMain(m *testing.M) {
	kubetest.RunShimIfInvoked() // StartInDir starts etcd and kube-apiserver through this binary
	os.Exit(m.Run())
}

// A restarted API server is the same server: same address, same CA, same data.
func TestRestartAPIServerKeepsClientsWorking(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := kubetest.StartInDir(kubetest.DirOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{}
	ns.Name = "before-restart"
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	addr := env.APIServerAddr()
	if _, err := env.RestartAPIServer(0); err != nil {
		t.Fatal(err)
	}
	if env.APIServerAddr() != addr {
		t.Fatalf("address changed: %s -> %s", addr, env.APIServerAddr())
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{}); err != nil {
		t.Fatalf("the same client after the restart: %v", err)
	}
}
