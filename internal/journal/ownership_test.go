package journal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOwnership is what each ownership state lets this process do, as a table: whether it still
// records the task (transitions, checkpoints, columns, status), and whether the reconciler must
// stop the local run and let the task go because it was taken from this process.
func TestOwnership(t *testing.T) {
	for _, tc := range []struct {
		state        Ownership
		writes, lost bool
	}{
		{Owned, true, false},
		{Released, false, false}, // given up on purpose: the hand-over finishes and forgets it
		{Fenced, false, true},
		{Stale, false, true},
		{Deleted, false, true},
	} {
		require.Equal(t, tc.writes, tc.state.Writes(), "%s writes", tc.state)
		require.Equal(t, tc.lost, tc.state.Lost(), "%s lost", tc.state)
		require.NotEqual(t, "Unknown", tc.state.String())
	}
}
