package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// TestOutage stops PostgreSQL mid-stream like a crash, checks that the
// failure is reported as transient, and replays the unrecorded transitions
// after a restart the way the controller's outbox does: everything ends up
// recorded exactly once, in order.
func TestOutage(t *testing.T) {
	ctx := testCtx(t)
	// A private server: stopping the shared one would break other tests.
	// synchronous_commit=on: a crash must not lose acknowledged commits.
	own, err := pgtest.Start(ctx, pgtest.WithSetting("synchronous_commit", "on"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, own.Close()) })
	if err := own.Stop(pgtest.StopFast); errors.Is(err, pgtest.ErrExternalServer) {
		t.Skip("external server (DATABASE_URL): cannot simulate an outage")
	}
	require.NoError(t, own.Restart())

	url, err := own.CreateDatabase(ctx, "outage")
	require.NoError(t, err)
	repo := openRepo(t, url, Config{MaxOpenConns: 4})

	k := createTask(t, repo, "u1", "ns", "n", "demo")
	at := time.Now()
	var outbox []TransitionWrite
	for i := range 10 {
		to := []lifecycle.Status{lifecycle.Running, lifecycle.Paused}[i%2]
		w := k.write(t, to, 1, at.Add(time.Duration(i)*time.Second))
		k.advance(w)
		outbox = append(outbox, w)
	}

	// Record the first three, then crash the server.
	for len(outbox) > 7 {
		require.NoError(t, repo.RecordTransition(ctx, outbox[0]))
		outbox = outbox[1:]
	}
	require.NoError(t, own.Stop(pgtest.StopImmediate))

	// Every attempt during the outage fails transiently; the outbox keeps them.
	for range 3 {
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := repo.RecordTransition(callCtx, outbox[0])
		cancel()
		require.Error(t, err)
		require.True(t, IsTransient(err), "want transient, got %v", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = repo.Ping(pingCtx)
	cancel()
	require.True(t, IsTransient(err), "ping: %v", err)

	require.NoError(t, own.Restart())

	// Drain the outbox in order, retrying while transient (the first calls
	// after the restart may hit dead pooled connections).
	for len(outbox) > 0 {
		err := repo.RecordTransition(ctx, outbox[0])
		if err != nil {
			require.True(t, IsTransient(err), "only transient errors may be retried: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		// Replaying what was just recorded (reply lost) must be a no-op.
		require.NoError(t, repo.RecordTransition(ctx, outbox[0]))
		outbox = outbox[1:]
	}

	hist, err := repo.History(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, hist, 11)
	for i, h := range hist {
		require.Equal(t, int64(i+1), h.Seq)
	}
	got, err := repo.GetTask(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, int64(11), got.LastSeq)
	require.Equal(t, lifecycle.Paused, got.Status)
}
