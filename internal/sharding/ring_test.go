package sharding

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		// Shaped like the UIDs the API server hands out.
		out[i] = fmt.Sprintf("%08x-1f2e-4d3c-8b7a-%012x", i*2654435761, i)
	}
	return out
}

func shares(r *Ring, ks []string) map[string]int {
	out := map[string]int{}
	for _, k := range ks {
		out[r.Assign(k)]++
	}
	return out
}

func TestRingBalance(t *testing.T) {
	ks := keys(30000)
	for _, n := range []int{2, 3, 5} {
		var members []string
		for i := range n {
			members = append(members, fmt.Sprintf("taskpilot-7d9f8c-%c", 'a'+i))
		}
		got := shares(NewRing(members, 0), ks)
		require.Len(t, got, n)
		even := float64(len(ks)) / float64(n)
		for m, c := range got {
			require.InDelta(t, even, float64(c), 0.10*even, "%d members: %s has %d of %d keys", n, m, c, len(ks))
		}
	}
}

func TestRingMovesAboutOneNth(t *testing.T) {
	ks := keys(30000)
	three := NewRing([]string{"a", "b", "c"}, 0)
	four := NewRing([]string{"a", "b", "c", "d"}, 0)
	moved := 0
	for _, k := range ks {
		before, after := three.Assign(k), four.Assign(k)
		if before != after {
			moved++
			require.Equal(t, "d", after, "a key that moves when d joins moves to d")
		}
	}
	require.InDelta(t, 0.25, float64(moved)/float64(len(ks)), 0.05, "adding a 4th member moves about a quarter")

	two := NewRing([]string{"a", "c"}, 0)
	for _, k := range ks {
		if before := three.Assign(k); before != "b" {
			require.Equal(t, before, two.Assign(k), "removing b moves only b's keys")
		}
	}
}

func TestRingIsTheSameEverywhere(t *testing.T) {
	a := NewRing([]string{"x", "y", "z"}, 0)
	b := NewRing([]string{"z", "", "x", "y", "x"}, 0)
	require.Equal(t, []string{"x", "y", "z"}, b.Members())
	for _, k := range keys(1000) {
		require.Equal(t, a.Assign(k), b.Assign(k))
	}
	require.Empty(t, NewRing(nil, 0).Assign("k"), "no members, no owner")
	require.Equal(t, "solo", NewRing([]string{"solo"}, 0).Assign("k"))
}
