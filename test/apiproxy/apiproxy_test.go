package apiproxy

import (
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
}
