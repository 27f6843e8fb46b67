// Package shrink has a map that gives its memory back. A Go map never shrinks: once it held a
// million entries it keeps the buckets for a million after they are deleted
// (golang/go#20135). The operator's per-task maps peak when a failover hands every task of the
// cluster to one replica, and they must not keep that peak for the life of the process.
package shrink

// minPeak is the size under which a map is never copied: small maps cost little, and copying
// them on every swing would cost more than it saves.
const minPeak = 256

// Map is a map whose storage is copied into a fitting one once it is emptied to a quarter of
// its peak, so it holds memory for at most four times its current entries (or minPeak). The
// copy costs as much as the entries left, after at least three times as many deletions: O(1)
// amortised. The zero value is an empty map. Not safe for concurrent use.
type Map[K comparable, V any] struct {
	m    map[K]V
	peak int
}

// Get returns the value of k (the zero value when absent).
func (s *Map[K, V]) Get(k K) V { return s.m[k] }

// Lookup returns the value of k and whether it is present.
func (s *Map[K, V]) Lookup(k K) (V, bool) {
	v, ok := s.m[k]
	return v, ok
}

// Set sets the value of k.
func (s *Map[K, V]) Set(k K, v V) {
	if s.m == nil {
		s.m = map[K]V{}
	}
	s.m[k] = v
	s.peak = max(s.peak, len(s.m))
}

// Delete removes k, and copies the map into a smaller one once it holds a quarter of its peak.
func (s *Map[K, V]) Delete(k K) {
	if _, ok := s.m[k]; !ok {
		return
	}
	delete(s.m, k)
	if s.peak >= minPeak && len(s.m) <= s.peak/4 {
		fresh := make(map[K]V, len(s.m))
		for k, v := range s.m {
			fresh[k] = v
		}
		s.m, s.peak = fresh, len(fresh)
	}
}

// Len is the number of entries.
func (s *Map[K, V]) Len() int { return len(s.m) }

// Range calls f for each entry until it returns false.
func (s *Map[K, V]) Range(f func(K, V) bool) {
	for k, v := range s.m {
		if !f(k, v) {
			return
		}
	}
}
