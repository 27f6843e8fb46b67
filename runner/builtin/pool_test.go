package builtin

import "testing"

// TestThePoolLendsOnlyWhatIsReserved: a run reserves its block size from the memory budget, so
// the buffer it gets must be of that size: a pooled 16 MiB buffer lent to a run of 64 KiB
// blocks would hold memory the budget counts as free.
func TestThePoolLendsOnlyWhatIsReserved(t *testing.T) {
	p := &blockPool{}
	p.put(make([]byte, 16<<20))
	small := p.get(64 << 10)
	if cap(small) != 64<<10 {
		t.Fatalf("a run of 64 KiB blocks got a buffer of %d bytes", cap(small))
	}
	p.put(small)
	if again := p.get(64 << 10); cap(again) != 64<<10 {
		t.Fatalf("the pool lent %d bytes for 64 KiB", cap(again))
	}
	if big := p.get(16 << 20); cap(big) != 16<<20 {
		t.Fatalf("the pool lent %d bytes for 16 MiB", cap(big))
	}
}
