package store

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckpoint(t *testing.T) {
	repo := newRepo(t)
	ctx := testCtx(t)
	k := createTask(t, repo, "u1", "ns", "n", "demo")
	k.apply(t, repo, StatusRunning, 1, time.Now())

	data, attempt, err := repo.LoadCheckpoint(ctx, "u1")
	require.NoError(t, err)
	require.Nil(t, data)
	require.Zero(t, attempt)

	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", 1, json.RawMessage(`{"offset": 10}`)))
	require.NoError(t, repo.SaveCheckpoint(ctx, "u1", 1, json.RawMessage(`{"offset": 20}`)))
	data, attempt, err = repo.LoadCheckpoint(ctx, "u1")
	require.NoError(t, err)
	require.JSONEq(t, `{"offset": 20}`, string(data))
	require.Equal(t, 1, attempt)

	// A zombie run of an older attempt cannot overwrite it.
	err = repo.SaveCheckpoint(ctx, "u1", 0, json.RawMessage(`{"offset": 99}`))
	require.ErrorIs(t, err, ErrStaleTransition)
	require.False(t, IsTransient(err))
	data, _, err = repo.LoadCheckpoint(ctx, "u1")
	require.NoError(t, err)
	require.JSONEq(t, `{"offset": 20}`, string(data))

	// Size limit: checked before the round trip.
	big := json.RawMessage(`"` + strings.Repeat("x", MaxCheckpointSize) + `"`)
	err = repo.SaveCheckpoint(ctx, "u1", 1, big)
	require.ErrorIs(t, err, ErrCheckpointTooLarge)
	require.False(t, IsTransient(err))
	// Under the raw limit but over it once jsonb normalises the text
	// (a space after every ':' and ','): the CHECK catches it, same error.
	var sb strings.Builder
	sb.WriteString("[")
	for i := 0; sb.Len() < MaxCheckpointSize-10; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString("1")
	}
	sb.WriteString("]")
	err = repo.SaveCheckpoint(ctx, "u1", 1, json.RawMessage(sb.String()))
	require.ErrorIs(t, err, ErrCheckpointTooLarge)

	require.ErrorIs(t, repo.SaveCheckpoint(ctx, "u1", 1, json.RawMessage(`{`)), ErrInvalidArgument)
	require.ErrorIs(t, repo.SaveCheckpoint(ctx, "nope", 1, json.RawMessage(`{}`)), ErrNotFound)
	_, _, err = repo.LoadCheckpoint(ctx, "nope")
	require.ErrorIs(t, err, ErrNotFound)
}
