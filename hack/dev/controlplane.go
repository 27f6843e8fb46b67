package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// devNamespace is where the local operator keeps its Leases and its task-type catalog: the
// namespace an operator outside a pod uses.
const devNamespace = "default"

// controlPlane is the local etcd and kube-apiserver (kubetest.StartInDir: envtest with its
// state in the dev directory, both processes dying with this one).
type controlPlane struct {
	env *kubetest.Env
}

// startControlPlane starts etcd (data in dir/etcd, kept, durable) and kube-apiserver (on
// cfg.apiserverAddr) and installs the CRDs.
func startControlPlane(cfg config, dir string, log logr.Logger) (*controlPlane, error) {
	start := time.Now()
	if _, _, err := net.SplitHostPort(cfg.apiserverAddr); err != nil {
		return nil, fmt.Errorf("%s %q: %w", flagHint("apiserver-addr"), cfg.apiserverAddr, err)
	}
	env, err := kubetest.StartInDir(kubetest.DirOptions{
		Dir:           dir,
		APIServerAddr: cfg.apiserverAddr,
		Assets:        cfg.assets,
		CRDDir:        cfg.crdDir,
		DurableEtcd:   true,
	})
	if err != nil {
		return nil, err
	}
	log.Info("control plane up in "+since(start), "apiserver", "https://"+env.APIServerAddr(), "etcd-data", env.EtcdDataDir())
	// The admission policies of config/admission: tasks of unknown types or params fields are
	// refused (reading the task-type catalog the operator publishes in its namespace, default
	// outside a pod), and only operators set the sharding labels.
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = errors.Join(kubetest.InstallTaskTypePolicy(ctx, c, devNamespace, "", nil),
			kubetest.InstallPolicy(ctx, c, "assignment_policy.yaml", "", "", nil))
		cancel()
	}
	if err != nil {
		return nil, joinStop(fmt.Errorf("install the admission policy: %w", err), env.Stop())
	}
	return &controlPlane{env: env}, nil
}

// writeKubeconfig writes an admin (system:masters) kubeconfig for kubectl and the operator.
func (cp *controlPlane) writeKubeconfig(path string) error {
	kc, err := kubetest.AdminKubeconfig(&cp.env.Environment.ControlPlane)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, kc, 0o600)
}

// stop stops kube-apiserver and etcd and removes the run's certificates; etcd's data is kept.
func (cp *controlPlane) stop() error {
	return cp.env.Stop()
}

// joinStop adds a cleanup error to the error that caused the cleanup.
func joinStop(cause, cleanup error) error {
	if cleanup == nil {
		return cause
	}
	return fmt.Errorf("%w (and while cleaning up: %w)", cause, cleanup)
}
