package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
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

// startControlPlane starts a fresh control plane; dir receives its kubeconfig. A restartable
// one keeps its certificates in dir, so that its API server can be stopped and started again
// (kubetest.StartInDir; the outage scenario).
func startControlPlane(dir string, restartable bool) (*controlPlane, error) {
	start := kubetest.Start
	if restartable {
		start = func() (*kubetest.Env, error) {
			return kubetest.StartInDir(kubetest.DirOptions{Dir: filepath.Join(dir, "controlplane")})
		}
	}
	env, err := start()
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

// warmUp creates and deletes throwaway BackgroundTasks until a create is quick. A fresh
// kube-apiserver answers the first requests for a new CRD slowly (measured: the first create
// took about 2 s after start, later ones milliseconds): without this, that start-up cost lands
// in whichever scenario runs first on the control plane, while the ceilings, measured later on
// the same one, never pay it.
func (cp *controlPlane) warmUp(ctx context.Context) error {
	start := time.Now()
	for i := 0; ; i++ {
		bt := &v1alpha1.BackgroundTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: fmt.Sprintf("warm-up-%d", i)},
			Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "noop"},
		}
		t := time.Now()
		if err := cp.client.Create(ctx, bt); err != nil {
			return fmt.Errorf("warm up the API server: %w", err)
		}
		took := time.Since(t)
		if err := cp.client.Delete(ctx, bt); err != nil {
			return fmt.Errorf("warm up the API server: %w", err)
		}
		if took < 50*time.Millisecond {
			logf("control plane warm after %v (%d creates; the last took %v)", time.Since(start).Round(time.Millisecond), i+1, took.Round(time.Millisecond))
			return nil
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("warm up the API server: creates still take %v after 30 s", took)
		}
	}
}

func (cp *controlPlane) stop() error {
	if err := cp.env.Stop(); err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}
