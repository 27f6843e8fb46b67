package lifecycle

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// TestLegalIsExactlyTheDocumentedLifecycle lists every legal step (docs/architecture.md's state
// diagram) and checks the table allows exactly these and nothing else.
func TestLegalIsExactlyTheDocumentedLifecycle(t *testing.T) {
	type step struct {
		from, to   Status
		newAttempt bool
	}
	allowed := map[step]bool{}
	for _, s := range []step{
		{Pending, Pending, false}, {Pending, Pending, true}, // queued for a slot; restart while Paused
		{Pending, Running, false}, {Pending, Running, true}, // a retry's run; the first run, a restart
		{Pending, Failed, false}, {Pending, Failed, true}, // unknown type / invalid params
		{Pending, Paused, false}, {Pending, Stopped, false},
		{Running, Pending, false}, {Running, Running, false}, {Running, Paused, false},
		{Running, Finished, false}, {Running, Failed, false}, {Running, Stopped, false},
		{Paused, Pending, false}, {Paused, Running, false}, {Paused, Failed, false}, {Paused, Stopped, false},
		{Finished, Pending, true}, {Finished, Running, true}, {Finished, Failed, true}, {Finished, Stopped, false},
		{Failed, Pending, true}, {Failed, Running, true}, {Failed, Failed, true}, {Failed, Stopped, false},
		{Stopped, Pending, true}, {Stopped, Running, true}, {Stopped, Failed, true}, {Stopped, Stopped, false},
	} {
		allowed[s] = true
	}
	all := []Status{Pending, Running, Paused, Finished, Failed, Stopped}
	for _, from := range all {
		for _, to := range all {
			for _, n := range []bool{false, true} {
				require.Equal(t, allowed[step{from, to, n}], Legal(from, to, n), "%s -> %s, new attempt %t", from, to, n)
			}
		}
	}
}

func TestNextRejectsBadEvents(t *testing.T) {
	rec, _ := Create(t0, 0)
	for name, ev := range map[string]Event{
		"unknown status":    {To: "DONE", Reason: "X", At: t0},
		"no reason":         {To: Running, Attempt: 1, At: t0},
		"no time":           {To: Running, Attempt: 1, Reason: "Started"},
		"attempt skipped":   {To: Running, Attempt: 2, Reason: "Started", At: t0},
		"attempt backwards": {To: Running, Attempt: -1, Reason: "Started", At: t0},
		"finish from queue": {To: Finished, Reason: "Completed", At: t0},
	} {
		_, err := Next(rec, ev)
		require.ErrorIs(t, err, ErrIllegal, name)
	}
	_, err := Next(Record{}, Event{To: Running, Attempt: 1, Reason: "Started", At: t0})
	require.ErrorIs(t, err, ErrIllegal, "a task without a record")
}

func step(t *testing.T, rec Record, ev Event) (Record, Transition) {
	t.Helper()
	tr, err := Next(rec, ev)
	require.NoError(t, err)
	return Apply(rec, tr), tr
}

func TestApplyComputesTheColumns(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	rec, created := Create(at(0), 2)
	require.Equal(t, Record{Status: Pending, Reason: ReasonCreated, Seq: 1, RestartGeneration: 2, TransitionedAt: at(0)}, rec)
	history := []Transition{created}

	var tr Transition
	rec, tr = step(t, rec, Event{To: Running, Attempt: 1, Reason: "Started", At: at(1)})
	history = append(history, tr)
	require.Equal(t, at(1), rec.StartTime)
	require.Equal(t, at(1), rec.LastRunTime)

	rec, tr = step(t, rec, Event{To: Failed, Attempt: 1, Reason: "Error", Message: "boom", At: at(2)})
	history = append(history, tr)
	require.Equal(t, at(2), rec.EndTime, "terminal: end time set")

	rec, tr = step(t, rec, Event{To: Pending, Attempt: 2, Reason: ReasonRetryScheduled, At: at(3), RetryAt: at(5)})
	history = append(history, tr)
	require.Equal(t, Record{Status: Pending, Attempt: 2, Reason: ReasonRetryScheduled, Seq: 4, LastRunTime: at(1),
		RetryAt: at(5), Retries: 1, RestartGeneration: 2, TransitionedAt: at(3)}, rec, "a retry: new attempt, no start or end time, retry_at set")

	rec, tr = step(t, rec, Event{To: Running, Attempt: 2, Reason: "Started", At: at(5)})
	history = append(history, tr)
	require.True(t, rec.RetryAt.IsZero(), "retry_at only while waiting")
	require.Equal(t, 1, rec.Retries, "running the retry keeps the count")

	rec, tr = step(t, rec, Event{To: Finished, Attempt: 2, Reason: "Completed", At: at(6)})
	history = append(history, tr)
	rec, tr = step(t, rec, Event{To: Running, Attempt: 3, Reason: "Started", At: at(7), RestartGeneration: 3})
	history = append(history, tr)
	require.Equal(t, 0, rec.Retries, "a restart gets its retries back")
	require.Equal(t, int64(3), rec.RestartGeneration)
	require.Equal(t, at(7), rec.StartTime)
	require.True(t, rec.EndTime.IsZero())

	rec, tr = step(t, rec, Event{To: Running, Attempt: 3, Reason: "Started", At: at(9)})
	history = append(history, tr)
	require.Equal(t, at(7), rec.StartTime, "resuming after a crash keeps the attempt's start time")
	require.Equal(t, at(9), rec.LastRunTime)

	replayed, err := Replay(history)
	require.NoError(t, err)
	require.Equal(t, rec, replayed)
}

func TestReplayRejectsBrokenHistories(t *testing.T) {
	rec, created := Create(t0, 0)
	tr, err := Next(rec, Event{To: Running, Attempt: 1, Reason: "Started", At: t0})
	require.NoError(t, err)
	for name, h := range map[string][]Transition{
		"empty":          nil,
		"no creation":    {tr},
		"gap":            {created, func() Transition { x := tr; x.Seq = 3; return x }()},
		"wrong from":     {created, func() Transition { x := tr; x.From = Paused; return x }()},
		"illegal":        {created, func() Transition { x := tr; x.To = Finished; return x }()},
		"lost restart":   {created, func() Transition { x := tr; x.RestartGeneration = -1; return x }()},
		"invented retry": {created, func() Transition { x := tr; x.RetryAt = t0; return x }()},
	} {
		_, err := Replay(h)
		require.True(t, errors.Is(err, ErrIllegal), fmt.Sprintf("%s: %v", name, err))
	}
}
