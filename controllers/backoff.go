package controllers

import (
	"encoding/binary"
	"hash/fnv"
	"time"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// Backoff defaults (spec.backoff unset).
const (
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 5 * time.Minute
)

// backoff is spec.backoff with its defaults applied.
type backoff struct {
	initial, max time.Duration
	jitter       float64 // share, 0..1
}

func backoffOf(spec v1alpha1.BackgroundTaskSpec) backoff {
	b := backoff{initial: DefaultBackoffInitial, max: DefaultBackoffMax}
	if s := spec.Backoff; s != nil {
		if s.Initial != nil {
			b.initial = s.Initial.Duration
		}
		if s.Max != nil {
			b.max = s.Max.Duration
		}
		b.jitter = float64(s.JitterPercent) / 100
	}
	return b
}

// wait is the backoff before a retry that follows `retries` earlier retries: initial·2^retries,
// at most max, spread by ±jitter. The spread is drawn from the task (seed) and the attempt, not
// from a clock or a random source, so every operator, before or after a restart, computes the
// same time from the row.
func (b backoff) wait(retries int, seed uint64, attempt int) time.Duration {
	d := b.max
	if retries < 62 && b.initial<<retries > 0 && b.initial<<retries < b.max {
		d = b.initial << retries
	}
	if b.jitter > 0 {
		h := fnv.New64a()
		var buf [16]byte
		binary.LittleEndian.PutUint64(buf[:8], seed)
		binary.LittleEndian.PutUint64(buf[8:], uint64(max(attempt, 0)))
		_, _ = h.Write(buf[:])
		u := float64(h.Sum64()%10_000) / 10_000 // [0, 1)
		d = time.Duration(float64(d) * (1 + b.jitter*(2*u-1)))
	}
	return d
}

// jitterSeed is the seed of a task's backoff jitter: its UID.
func jitterSeed(uid string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	return h.Sum64()
}
