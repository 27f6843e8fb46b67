package engine

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/require"
)

func TestALazyLoggerLogsLikeTheEagerOne(t *testing.T) {
	var lines []string
	base := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) },
		funcr.Options{LogCaller: funcr.All, Verbosity: 1})
	log := lazyLogger(base, "uid", "u1", "attempt", 2)
	log.Info("started")
	log.WithName("items").WithValues("idx", 7).V(1).Info("claimed")
	log.V(2).Info("hidden")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], `"uid"="u1" "attempt"=2`)
	require.Contains(t, lines[0], "lazylog_test.go", "the caller is the code that logged, not the lazy sink")
	require.True(t, strings.HasPrefix(lines[1], "items "), lines[1])
	require.Contains(t, lines[1], `"uid"="u1" "attempt"=2 "idx"=7`)
	require.Equal(t, logr.Discard(), lazyLogger(logr.Discard()))
	helper := func(l logr.Logger) { l.WithCallDepth(1).Info("through a helper") }
	helper(log)
	_, _, next, _ := runtime.Caller(0)
	require.Contains(t, lines[2], fmt.Sprintf(`"line"=%d}`, next-1), "WithCallDepth skips the helper: %s", lines[2])
}
