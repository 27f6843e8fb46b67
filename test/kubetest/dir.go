package kubetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// DirOptions configure StartInDir.
type DirOptions struct {
	// Dir holds the control plane's state: etcd/ (data, kept), apiserver-certs/ (removed by
	// Stop), shims/, and the logs etcd.log and kube-apiserver.log (appended to).
	Dir string
	// APIServerAddr is the kube-apiserver's host:port; empty picks a free port on 127.0.0.1.
	APIServerAddr string
	// Assets is the directory of etcd and kube-apiserver (default Assets()).
	Assets string
	// CRDDir holds the CRD manifests to install (default config/crd/bases of the repository).
	CRDDir string
	// DurableEtcd keeps etcd's fsync on (envtest turns it off): for data that is kept.
	DurableEtcd bool
}

// StartInDir starts etcd and kube-apiserver with their state in opts.Dir and installs the CRDs.
// Unlike Start, the API server's certificates live in a known directory, so RestartAPIServer
// brings back the same server (same address, same CA) and existing kubeconfigs keep working.
// Both binaries are started through the parent-death shim (see shim.go): they die with this
// process even if it is killed, and the caller's main must call RunShimIfInvoked first.
func StartInDir(opts DirOptions) (*Env, error) {
	if opts.Assets == "" {
		opts.Assets = Assets()
	}
	if opts.CRDDir == "" {
		opts.CRDDir = filepath.Join(RepoRoot(), "config", "crd", "bases")
	}
	host, port := "127.0.0.1", ""
	if opts.APIServerAddr != "" {
		var err error
		if host, port, err = net.SplitHostPort(opts.APIServerAddr); err != nil {
			return nil, fmt.Errorf("apiserver address %q: %w", opts.APIServerAddr, err)
		}
	}
	shims, err := installShims(opts.Dir, opts.Assets)
	if err != nil {
		return nil, err
	}
	e := &Env{certDir: filepath.Join(opts.Dir, "apiserver-certs")}
	// A fresh certificate directory each run (envtest makes a new CA every time); one left
	// behind by a killed run is simply replaced.
	if err := os.RemoveAll(e.certDir); err != nil {
		return nil, fmt.Errorf("remove old apiserver certificates: %w", err)
	}
	if err := os.MkdirAll(e.certDir, 0o700); err != nil {
		return nil, fmt.Errorf("create apiserver certificate dir: %w", err)
	}
	etcdLog, err := e.openLog(filepath.Join(opts.Dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	apiLog, err := e.openLog(filepath.Join(opts.Dir, "kube-apiserver.log"))
	if err != nil {
		e.closeLogs()
		return nil, err
	}
	etcd := &envtest.Etcd{Path: shims["etcd"], DataDir: filepath.Join(opts.Dir, "etcd"), Out: etcdLog, Err: etcdLog}
	if opts.DurableEtcd {
		etcd.Configure().Set("unsafe-no-fsync", "false")
	}
	api := &envtest.APIServer{Path: shims["kube-apiserver"], CertDir: e.certDir, Out: apiLog, Err: apiLog}
	api.Address, api.Port = host, port
	scheme, err := newScheme()
	if err != nil {
		e.closeLogs()
		return nil, err
	}
	e.Scheme = scheme
	e.Environment = &envtest.Environment{
		CRDDirectoryPaths:        []string{opts.CRDDir},
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	e.Environment.ControlPlane.Etcd = etcd
	e.Environment.ControlPlane.APIServer = api
	if e.Config, err = e.Environment.Start(); err != nil {
		stopErr := e.Stop()
		if stopErr != nil {
			err = fmt.Errorf("%w (and while cleaning up: %w)", err, stopErr)
		}
		return nil, fmt.Errorf("start the control plane (logs: %s, %s): %w", etcdLog.Name(), apiLog.Name(), err)
	}
	return e, nil
}

// APIServerAddr is the host:port the API server listens on.
func (e *Env) APIServerAddr() string {
	s := e.Environment.ControlPlane.APIServer.SecureServing
	return net.JoinHostPort(s.Address, s.Port)
}

// EtcdDataDir is where etcd keeps its data.
func (e *Env) EtcdDataDir() string { return e.Environment.ControlPlane.Etcd.DataDir }

// RestartAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after its stop timeout), keeps
// it down for down, and starts it again on the same address with the same certificates; etcd
// keeps running. graceful is false when it had to be killed. Only for an Env from StartInDir
// (Start's certificates vanish with the server).
func (e *Env) RestartAPIServer(down time.Duration) (graceful bool, err error) {
	if e.certDir == "" {
		return false, errors.New("kubetest: RestartAPIServer needs a control plane from StartInDir")
	}
	api := e.Environment.ControlPlane.APIServer
	// A stop that times out has sent SIGKILL: the server is going away either way.
	graceful = api.Stop() == nil
	time.Sleep(down)
	// A killed server may hold its port for a moment longer.
	for try := 0; ; try++ {
		if err = api.Start(); err == nil {
			return graceful, nil
		}
		if try == 10 {
			return graceful, fmt.Errorf("start kube-apiserver again: %w", err)
		}
		time.Sleep(time.Second)
	}
}

// openLog opens (appending) a log file that Stop closes.
func (e *Env) openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	e.logs = append(e.logs, f)
	return f, nil
}

func (e *Env) closeLogs() {
	for _, f := range e.logs {
		_ = f.Close()
	}
	e.logs = nil
}
