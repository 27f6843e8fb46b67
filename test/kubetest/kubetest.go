// Package kubetest starts a real kube-apiserver and etcd (controller-runtime envtest) with the
// BackgroundTask CRD installed, for integration tests. The binaries are built from Go modules
// by `make envtest` into bin/k8s; KUBEBUILDER_ASSETS overrides the location.
package kubetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Assets is the directory holding kube-apiserver and etcd.
func Assets() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join(RepoRoot(), "bin", "k8s")
}

// Env is a running control plane.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Scheme      *k8sruntime.Scheme
	// certDir and logs are set by StartInDir: the API server's certificates (removed by Stop)
	// and the control plane's log files (closed by Stop).
	certDir string
	logs    []*os.File
}

// newScheme knows the built-in types and BackgroundTask.
func newScheme() (*k8sruntime.Scheme, error) {
	scheme := k8sruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		return nil, err
	}
	return scheme, nil
}

// Start starts etcd and kube-apiserver and installs the CRDs from config/crd/bases.
func Start() (*Env, error) {
	assets := Assets()
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run `make envtest` first (it builds the control plane from Go modules): %w", assets, err)
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	return &Env{Environment: env, Config: cfg, Scheme: scheme}, nil
}

// Stop stops the control plane (SIGTERM, then SIGKILL after the stop timeout). For an Env
// from StartInDir it also closes the logs and removes the certificates; etcd's data is kept.
func (e *Env) Stop() error {
	err := e.Environment.Stop()
	if err != nil {
		err = fmt.Errorf("stop the control plane: %w", err)
	}
	e.closeLogs()
	if e.certDir != "" {
		if rmErr := os.RemoveAll(e.certDir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove apiserver certificates: %w", rmErr))
		}
	}
	return err
}

// WriteKubeconfig writes an admin kubeconfig for the control plane (for kubectl) to path.
func (e *Env) WriteKubeconfig(path string) error {
	kc, err := AdminKubeconfig(&e.Environment.ControlPlane)
	if err != nil {
		return err
	}
	return os.WriteFile(path, kc, 0o600)
}

// AdminKubeconfig provisions a system:masters user on a running envtest control plane and
// returns a kubeconfig for it (for kubectl and the operator; also used by make dev).
func AdminKubeconfig(cp *envtest.ControlPlane) ([]byte, error) {
	user, err := cp.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("render kubeconfig: %w", err)
	}
	return kc, nil
}
