package sharding

import (
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// DefaultVirtualNodes is how many points each member has on the ring. With 500, the largest
// share of 3 members stays within about 8% of a third (ring_test.go checks the spread); fewer
// points spread less evenly. The points cost 12 KiB per member and a sort when membership
// changes.
const DefaultVirtualNodes = 500

// Ring assigns keys to members by consistent hashing: each member owns the arcs before its
// virtual nodes, so adding or removing one of N members moves about 1/N of the keys and leaves
// the others where they were. A Ring is immutable; build a new one when members change.
type Ring struct {
	points  []point
	members []string
}

type point struct {
	hash   uint64
	member string
}

// NewRing places vnodes points of every member on the ring (DefaultVirtualNodes when
// vnodes <= 0). Duplicate and empty member names are ignored. The same members give the same
// ring in every process, in any order.
func NewRing(members []string, vnodes int) *Ring {
	if vnodes <= 0 {
		vnodes = DefaultVirtualNodes
	}
	uniq := slices.Clone(members)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	uniq = slices.DeleteFunc(uniq, func(m string) bool { return m == "" })
	r := &Ring{members: uniq, points: make([]point, 0, len(uniq)*vnodes)}
	for _, m := range uniq {
		for i := range vnodes {
			r.points = append(r.points, point{hash: xxhash.Sum64String(m + "#" + strconv.Itoa(i)), member: m})
		}
	}
	slices.SortFunc(r.points, func(a, b point) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		// Equal hashes (vanishingly rare) are ordered by name, so every process agrees.
		if a.member < b.member {
			return -1
		}
		if a.member > b.member {
			return 1
		}
		return 0
	})
	return r
}

// Members returns the ring's members, sorted.
func (r *Ring) Members() []string { return slices.Clone(r.members) }

// Assign returns the member that owns key: the first point at or after the key's hash,
// wrapping around. It is "" when the ring has no members.
func (r *Ring) Assign(key string) string {
	if len(r.points) == 0 {
		return ""
	}
	h := xxhash.Sum64String(key)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p point, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].member
}
