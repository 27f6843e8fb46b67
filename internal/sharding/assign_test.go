package sharding

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNext(t *testing.T) {
	live := func(m string) bool { return m == "a" || m == "b" }
	for name, c := range map[string]struct {
		current Labels
		wanted  string
		patch   bool
		want    Labels
	}{
		"no replica: leave it":          {current: Labels{Shard: "a"}, wanted: ""},
		"new task: assign":              {current: Labels{}, wanted: "a", patch: true, want: Labels{Shard: "a"}},
		"drained: assign the new one":   {current: Labels{}, wanted: "b", patch: true, want: Labels{Shard: "b"}},
		"in place":                      {current: Labels{Shard: "a"}, wanted: "a"},
		"live owner: drain first":       {current: Labels{Shard: "a"}, wanted: "b", patch: true, want: Labels{Shard: "a", Draining: true}},
		"draining: wait":                {current: Labels{Shard: "a", Draining: true}, wanted: "b"},
		"ring moved back: call it off":  {current: Labels{Shard: "a", Draining: true}, wanted: "a", patch: true, want: Labels{Shard: "a"}},
		"gone owner: move directly":     {current: Labels{Shard: "c"}, wanted: "a", patch: true, want: Labels{Shard: "a"}},
		"gone while draining: move":     {current: Labels{Shard: "c", Draining: true}, wanted: "b", patch: true, want: Labels{Shard: "b"}},
		"gone owner, no replica: leave": {current: Labels{Shard: "c"}, wanted: ""},
		"unassigned, no replica: leave": {current: Labels{}, wanted: ""},
		"draining label alone: assign":  {current: Labels{Draining: true}, wanted: "a", patch: true, want: Labels{Shard: "a"}},
	} {
		m := Next(c.current, c.wanted, live)
		require.Equal(t, c.patch, m.Patch, name)
		require.NotEmpty(t, m.Why, name)
		if c.patch {
			require.Equal(t, c.want, m.Want, name)
		}
	}
}

func TestLabelsOf(t *testing.T) {
	require.Equal(t, Labels{Shard: "a", Draining: true}, LabelsOf(map[string]string{LabelShard: "a", LabelDrain: "true"}))
	require.Equal(t, Labels{}, LabelsOf(nil))
	require.Equal(t, Labels{Shard: "a"}, LabelsOf(map[string]string{LabelShard: "a", LabelDrain: "no"}))
}
