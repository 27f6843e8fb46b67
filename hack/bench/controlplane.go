package main

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// controlPlane is one envtest kube-apiserver + etcd with the CRD installed, plus clients.
type controlPlane struct {
	env        *kubetest.Env
	kubeconfig string
	cfg        *rest.Config // admin, unthrottled
	client     client.WithWatch
	clientset  *kubernetes.Clientset
	apiPID     int
	etcdPID    int
}

// startControlPlane starts a fresh control plane; dir receives its kubeconfig.
func startControlPlane(dir string) (*controlPlane, error) {
	env, err := kubetest.Start()
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	cp := &controlPlane{env: env, kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := cp.init(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return cp, nil
}

func (cp *controlPlane) init() error {
	if err := cp.env.WriteKubeconfig(cp.kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	cfg := rest.CopyConfig(cp.env.Config)
	cfg.QPS, cfg.Burst = -1, -1 // no client-side limit for the load generator
	cp.cfg = cfg
	var err error
	if cp.client, err = client.NewWithWatch(cfg, client.Options{Scheme: cp.env.Scheme}); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if cp.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("clientset: %w", err)
	}
	// envtest runs kube-apiserver and etcd as our direct children.
	if cp.apiPID, err = childPID("kube-apiserver"); err != nil {
		return err
	}
	if cp.etcdPID, err = childPID("etcd"); err != nil {
		return err
	}
	return nil
}

func (cp *controlPlane) stop() error {
	if err := cp.env.Stop(); err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}
