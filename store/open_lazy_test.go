package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOpenLazyNeedsNoDatabase: the operator starts while PostgreSQL is down: opening
// succeeds without a server, and what needs one fails with an error instead.
func TestOpenLazyNeedsNoDatabase(t *testing.T) {
	// Port 1 on loopback: nothing listens there, the connection is refused at once.
	r, err := OpenLazy(Config{URL: "postgres://taskpilot@127.0.0.1:1/taskpilot?sslmode=disable&connect_timeout=2"})
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.Error(t, r.Ping(ctx))
	require.Error(t, r.Migrate(ctx))
}
