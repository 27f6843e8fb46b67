package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// controlPlane is the local etcd and kube-apiserver, run by controller-runtime's envtest.
type controlPlane struct {
	env     *envtest.Environment
	certDir string
	logs    []*os.File
}

// startControlPlane starts etcd (data in dir/etcd, kept) and kube-apiserver (on
// cfg.apiserverAddr) and installs the CRDs. Both binaries are started through the parent-death
// shim (see shim.go), so they die with this process.
func startControlPlane(cfg config, dir string, log logr.Logger) (*controlPlane, error) {
	start := time.Now()
	host, port, err := net.SplitHostPort(cfg.apiserverAddr)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flagHint("apiserver-addr"), cfg.apiserverAddr, err)
	}
	shims, err := installShims(dir, cfg.assets)
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{certDir: filepath.Join(dir, "apiserver-certs")}
	// A fresh certificate directory each run (envtest makes a new CA every time); one left
	// behind by a killed run is simply replaced.
	if err := os.RemoveAll(cp.certDir); err != nil {
		return nil, fmt.Errorf("remove old apiserver certificates: %w", err)
	}
	if err := os.MkdirAll(cp.certDir, 0o700); err != nil {
		return nil, fmt.Errorf("create apiserver certificate dir: %w", err)
	}
	etcdLog, err := cp.openLog(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	apiLog, err := cp.openLog(filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		cp.closeLogs()
		return nil, err
	}

	etcd := &envtest.Etcd{
		Path:    shims["etcd"],
		DataDir: filepath.Join(dir, "etcd"),
		Out:     etcdLog,
		Err:     etcdLog,
	}
	// envtest turns fsync off when etcd supports it; this data is kept, so keep it durable.
	etcd.Configure().Set("unsafe-no-fsync", "false")
	api := &envtest.APIServer{
		Path:    shims["kube-apiserver"],
		CertDir: cp.certDir,
		Out:     apiLog,
		Err:     apiLog,
	}
	api.Address = host
	api.Port = port

	cp.env = &envtest.Environment{
		CRDDirectoryPaths:        []string{cfg.crdDir},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cp.env.ControlPlane.Etcd = etcd
	cp.env.ControlPlane.APIServer = api
	if _, err := cp.env.Start(); err != nil {
		stopErr := cp.stop()
		return nil, fmt.Errorf("start the control plane (logs: %s, %s): %w", etcdLog.Name(), apiLog.Name(), joinStop(err, stopErr))
	}
	log.Info("control plane up in "+since(start), "apiserver", "https://"+cfg.apiserverAddr, "etcd-data", etcd.DataDir)
	return cp, nil
}

// openLog opens (appending) a log file that cp closes when it stops.
func (cp *controlPlane) openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	cp.logs = append(cp.logs, f)
	return f, nil
}

func (cp *controlPlane) closeLogs() {
	for _, f := range cp.logs {
		_ = f.Close()
	}
	cp.logs = nil
}

// writeKubeconfig writes an admin (system:masters) kubeconfig for kubectl and the operator.
func (cp *controlPlane) writeKubeconfig(path string) error {
	kc, err := kubetest.AdminKubeconfig(&cp.env.ControlPlane)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, kc, 0o600)
}

// stop stops kube-apiserver and etcd (SIGTERM, then SIGKILL after the stop timeout) and
// removes the run's certificates; etcd's data is kept.
func (cp *controlPlane) stop() error {
	var err error
	if cp.env != nil {
		if err = cp.env.Stop(); err != nil {
			err = fmt.Errorf("stop the control plane: %w", err)
		}
	}
	cp.closeLogs()
	if rmErr := os.RemoveAll(cp.certDir); rmErr != nil && err == nil {
		err = fmt.Errorf("remove apiserver certificates: %w", rmErr)
	}
	return err
}

// joinStop adds a cleanup error to the error that caused the cleanup.
func joinStop(cause, cleanup error) error {
	if cleanup == nil {
		return cause
	}
	return fmt.Errorf("%w (and while cleaning up: %w)", cause, cleanup)
}
