package main

import (
	"math"
	"sort"
	"time"
)

// dist summarises a latency distribution.
type dist struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return dist{n: len(s), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[len(s)-1]}
}
