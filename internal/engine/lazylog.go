package engine

import (
	"slices"
	"sync"

	"github.com/go-logr/logr"
)

// lazyLogger is base.WithValues(kv...) built on first use. Every run gets a logger carrying its
// task's identity, and most runs never log: with zap, WithValues encodes the values into a
// buffer of its own at once, which was a fifth of the operator's heap at 10,000 tasks
// (docs/benchmarks.md, footprint).
func lazyLogger(base logr.Logger, kv ...any) logr.Logger {
	sink := base.GetSink()
	if sink == nil {
		return base // discard
	}
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1) // lazySink's own frame
	}
	return logr.New(&lazySink{base: sink, kv: kv}).V(base.GetV())
}

// lazySink defers base.WithValues(kv...) until something is logged. Values are encoded when
// first logged, not when given: pass values, not pointers to what may change.
type lazySink struct {
	base logr.LogSink
	kv   []any
	once sync.Once
	sink logr.LogSink
}

func (l *lazySink) get() logr.LogSink {
	l.once.Do(func() { l.sink = l.base.WithValues(l.kv...) })
	return l.sink
}

func (l *lazySink) Init(logr.RuntimeInfo) {}

// Enabled asks the base: a level does not depend on the values.
func (l *lazySink) Enabled(level int) bool { return l.base.Enabled(level) }

func (l *lazySink) Info(level int, msg string, kv ...any) { l.get().Info(level, msg, kv...) }

func (l *lazySink) Error(err error, msg string, kv ...any) { l.get().Error(err, msg, kv...) }

func (l *lazySink) WithValues(kv ...any) logr.LogSink {
	return &lazySink{base: l.base, kv: append(slices.Clip(l.kv), kv...)}
}

func (l *lazySink) WithName(name string) logr.LogSink {
	return &lazySink{base: l.base.WithName(name), kv: l.kv}
}

// WithCallDepth keeps logr.Logger.WithCallDepth working for code that logs through helpers.
func (l *lazySink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := l.base.(logr.CallDepthLogSink); ok {
		return &lazySink{base: cd.WithCallDepth(depth), kv: l.kv}
	}
	return l
}
