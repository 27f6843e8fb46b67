package apiproxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

// TestOnlyLeaseRequestsAreSlowed: with SlowLeases on, a Lease GET waits, a watch of Leases and
// any other request do not; every request reaches the server with the proxy's credentials.
func TestOnlyLeaseRequestsAreSlowed(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" { // a watch: one event, then nothing until the client leaves
			_, _ = io.WriteString(w, "event\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	p, err := Start(&rest.Config{Host: srv.URL, BearerToken: "admin", TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })

	get := func(path string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := http.Get("http://" + p.Addr() + path) //nolint:noctx // loopback, bounded by the test
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(body), time.Since(start)
	}
	const lease = "/apis/coordination.k8s.io/v1/namespaces/default/leases/x"
	body, _ := get(lease)
	require.Equal(t, "Bearer admin", body, "forwarded with the proxy's credentials")

	p.SlowLeases(time.Second)
	_, took := get(lease)
	require.GreaterOrEqual(t, took, time.Second, "a Lease request waits")
	require.EqualValues(t, 1, p.Delayed())
	_, _ = get("/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=true")
	_, _ = get("/api/v1/namespaces/default/configmaps")
	require.EqualValues(t, 1, p.Delayed(), "watches and other requests are not delayed")

	p.SlowLeases(0)
	_, _ = get(lease)
	require.EqualValues(t, 1, p.Delayed(), "SlowLeases(0) ends it")

	watch, err := http.Get("http://" + p.Addr() + "/stream") //nolint:noctx,bodyclose // loopback, bounded by the test; closed below
	require.NoError(t, err)
	defer watch.Body.Close()
	line, err := bufio.NewReader(watch.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "event\n", line)
	ended := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, watch.Body); close(ended) }()
	p.Block(true)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("Block left a watch open")
	}
	resp, err := http.Get("http://" + p.Addr() + "/api/v1/namespaces") //nolint:noctx // loopback, bounded by the test
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "blocked")
	p.Block(false)
	body, _ = get("/api/v1/namespaces")
	require.Equal(t, "Bearer admin", body, "through again")
}
