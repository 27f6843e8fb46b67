package lifecycle

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestAnyEventSequenceYieldsALegalReplayableHistory drives the lifecycle with arbitrary events,
// legal or not, the way a buggy caller or a hostile schedule might. Whatever is accepted must
// keep the record's invariants, and replaying the accepted history must rebuild the record.
func TestAnyEventSequenceYieldsALegalReplayableHistory(t *testing.T) {
	statuses := []Status{Pending, Running, Paused, Finished, Failed, Stopped}
	reasons := []string{"Started", "Paused", "Completed", "Error", ReasonRetryScheduled, ReasonRestarted, ReasonStopped, ReasonUnknownTaskType}
	rapid.Check(t, func(t *rapid.T) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		rec, created := Create(now, int64(rapid.IntRange(0, 3).Draw(t, "gen0")))
		history := []Transition{created}
		startedThisAttempt := false
		retriesModel := 0
		for range rapid.IntRange(0, 60).Draw(t, "events") {
			now = now.Add(time.Duration(rapid.IntRange(0, 5000).Draw(t, "ms")) * time.Millisecond)
			ev := Event{
				To:                rapid.SampledFrom(statuses).Draw(t, "to"),
				Attempt:           rec.Attempt + rapid.IntRange(-1, 2).Draw(t, "delta"),
				Reason:            rapid.SampledFrom(reasons).Draw(t, "reason"),
				At:                now,
				RetryAt:           now.Add(time.Second),
				RestartGeneration: int64(rapid.IntRange(0, 6).Draw(t, "gen")),
			}
			tr, err := Next(rec, ev)
			if err != nil {
				continue
			}
			prev := rec
			rec = Apply(rec, tr)
			history = append(history, tr)

			newAttempt := tr.Attempt != prev.Attempt
			switch {
			case newAttempt && tr.Reason == ReasonRetryScheduled:
				retriesModel++
				startedThisAttempt = false
			case newAttempt:
				retriesModel = 0
				startedThisAttempt = false
			}
			if tr.To == Running {
				startedThisAttempt = true
			}
			checkInvariants(t, prev, rec, tr, startedThisAttempt, retriesModel)
		}
		replayed, err := Replay(history)
		if err != nil {
			t.Fatalf("replay of an accepted history failed: %v", err)
		}
		if replayed != rec {
			t.Fatalf("replay rebuilt %+v, the record is %+v", replayed, rec)
		}
	})
}

func checkInvariants(t *rapid.T, prev, rec Record, tr Transition, started bool, retries int) {
	switch {
	case tr.Seq != prev.Seq+1 || rec.Seq != tr.Seq:
		t.Fatalf("seq not contiguous: %d after %d", tr.Seq, prev.Seq)
	case tr.From != prev.Status:
		t.Fatalf("transition from %s recorded on a %s record", tr.From, prev.Status)
	case rec.Attempt < prev.Attempt || rec.Attempt > prev.Attempt+1:
		t.Fatalf("attempt jumped from %d to %d", prev.Attempt, rec.Attempt)
	case prev.Status.Terminal() && rec.Attempt == prev.Attempt && rec.Status != Stopped:
		t.Fatalf("a terminal task moved to %s without a new attempt", rec.Status)
	case rec.Status == Finished && prev.Status != Running:
		t.Fatalf("finished from %s", prev.Status)
	case rec.EndTime.IsZero() == rec.Status.Terminal():
		t.Fatalf("end time %v on a %s record", rec.EndTime, rec.Status)
	case !rec.RetryAt.IsZero() && (rec.Status != Pending || rec.Reason != ReasonRetryScheduled):
		t.Fatalf("retry_at set on %s/%s", rec.Status, rec.Reason)
	case rec.StartTime.IsZero() == started:
		t.Fatalf("start time %v, but the attempt ran: %t", rec.StartTime, started)
	case rec.Retries != retries:
		t.Fatalf("retries %d, expected %d", rec.Retries, retries)
	case rec.RestartGeneration < prev.RestartGeneration:
		t.Fatalf("restart generation went back from %d to %d", prev.RestartGeneration, rec.RestartGeneration)
	}
}
