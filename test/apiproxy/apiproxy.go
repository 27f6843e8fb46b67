// Package apiproxy stands between operator processes and a kube-apiserver so that a test or
// the chaos run can make the API server answer Lease requests late, as an overloaded control
// plane does, while every other request goes through at once.
package apiproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Proxy forwards to one API server. Clients reach it over plain HTTP on loopback, without
// credentials; it forwards with those of the rest.Config it was started with.
type Proxy struct {
	srv        *http.Server
	addr       string
	leaseDelay atomic.Int64 // how long a Lease request waits before it is forwarded (0: none)
	delayed    atomic.Int64 // Lease requests delayed so far
	// cut is closed to end every request in flight (watches included) when the proxy is
	// blocked; blocked refuses new ones.
	mu      sync.Mutex
	cut     chan struct{}
	blocked bool
}

// Start listens on a free loopback port and forwards to the API server of cfg.
func Start(cfg *rest.Config) (*Proxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("apiserver URL %q: %w", cfg.Host, err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("apiserver transport: %w", err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = transport
	rp.FlushInterval = -1 // watches stream
	// Streams cut by an API server that stops are expected here; the clients see them anyway.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, "apiserver unreachable: "+err.Error(), http.StatusBadGateway)
	}
	p := &Proxy{cut: make(chan struct{})}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		blocked, cut := p.blocked, p.cut
		p.mu.Unlock()
		if blocked {
			http.Error(w, "apiproxy: the API server is out of reach", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			select {
			case <-cut:
				cancel()
			case <-ctx.Done():
			}
		}()
		r = r.WithContext(ctx)
		if d := time.Duration(p.leaseDelay.Load()); d > 0 && isLeaseRequest(r) {
			p.delayed.Add(1)
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return // the client gave up, as a client of an overloaded server does
			}
		}
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	p.addr = ln.Addr().String()
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// isLeaseRequest: a request for a Lease (coordination.k8s.io), whatever the verb; watches of
// Leases are not delayed (they would only arrive late, which a slow server does as well).
func isLeaseRequest(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/apis/coordination.k8s.io/") && r.URL.Query().Get("watch") != "true"
}

// SlowLeases makes every Lease request (but watches) wait d before it is forwarded; 0 ends it.
// A request whose client gives up meanwhile is dropped, as an overloaded server's would be.
func (p *Proxy) SlowLeases(d time.Duration) { p.leaseDelay.Store(int64(d)) }

// Block cuts the clients off the API server (true) or lets them through again (false): while
// blocked, every request in flight ends (watches included) and new ones get 503, as when the
// process is partitioned from the control plane.
func (p *Proxy) Block(blocked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if blocked && !p.blocked {
		close(p.cut)
		p.cut = make(chan struct{})
	}
	p.blocked = blocked
}

// Delayed is how many Lease requests were delayed so far.
func (p *Proxy) Delayed() int64 { return p.delayed.Load() }

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// WriteKubeconfig writes a kubeconfig that reaches the API server through the proxy.
func (p *Proxy) WriteKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["chaos"] = &clientcmdapi.Cluster{Server: "http://" + p.addr}
	cfg.AuthInfos["chaos"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["chaos"] = &clientcmdapi.Context{Cluster: "chaos", AuthInfo: "chaos"}
	cfg.CurrentContext = "chaos"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write the proxy kubeconfig: %w", err)
	}
	return os.Chmod(path, 0o600)
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return p.srv.Close()
	}
	return nil
}
