package shrink

import (
	"runtime"
	"strconv"
	"testing"
)

// heap is the live heap after a collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestAnEmptiedMapGivesItsMemoryBack: after 50,000 entries came and went, the map holds about
// what an empty one does; a plain Go map keeps every bucket.
func TestAnEmptiedMapGivesItsMemoryBack(t *testing.T) {
	const n = 50_000
	fill := func(set func(string, [4]int64), del func(string)) {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = "task-" + strconv.Itoa(i)
			set(keys[i], [4]int64{int64(i)})
		}
		for _, k := range keys {
			del(k)
		}
	}
	before := heap()
	var s Map[string, [4]int64]
	fill(s.Set, s.Delete)
	shrunk := int64(heap()) - int64(before)

	before = heap()
	plain := map[string][4]int64{}
	fill(func(k string, v [4]int64) { plain[k] = v }, func(k string) { delete(plain, k) })
	kept := int64(heap()) - int64(before)
	runtime.KeepAlive(plain)
	runtime.KeepAlive(&s)

	if s.Len() != 0 {
		t.Fatalf("Len = %d after deleting everything", s.Len())
	}
	if shrunk > 64<<10 {
		t.Fatalf("the emptied map still holds %d KiB (a plain map: %d KiB)", shrunk>>10, kept>>10)
	}
	if kept < 1<<20 {
		t.Fatalf("a plain map kept only %d KiB: the test no longer shows what it guards against", kept>>10)
	}
}

func TestMapBehavesAsAMap(t *testing.T) {
	var s Map[int, string]
	if _, ok := s.Lookup(1); ok || s.Get(1) != "" || s.Len() != 0 {
		t.Fatal("zero value is not empty")
	}
	for i := range 1000 {
		s.Set(i, strconv.Itoa(i))
	}
	for i := range 990 {
		s.Delete(i)
	}
	s.Delete(-1) // absent
	if s.Len() != 10 {
		t.Fatalf("Len = %d", s.Len())
	}
	for i := 990; i < 1000; i++ {
		if v, ok := s.Lookup(i); !ok || v != strconv.Itoa(i) {
			t.Fatalf("entry %d lost in a copy: %q %v", i, v, ok)
		}
	}
	n := 0
	s.Range(func(int, string) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Range did not stop: %d", n)
	}
}
