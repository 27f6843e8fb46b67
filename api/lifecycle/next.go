package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// ErrIllegal is wrapped by every error of Next and Replay: the event or transition is not a
// legal step of the lifecycle from the record it was applied to.
var ErrIllegal = errors.New("illegal lifecycle transition")

// attemptRule says which attempt numbers a move may carry.
type attemptRule uint8

const (
	same      attemptRule = 1 << iota // the attempt continues
	newRun                            // a new attempt starts (attempt + 1)
	sameOrNew = same | newRun
)

// legal is the lifecycle, as a table: from -> to -> which attempt numbers are allowed. A move
// that is not in the table never reaches PostgreSQL.
//
//   - From Pending a run starts (the first attempt, a scheduled retry, a restart) or is parked,
//     stopped, or fails to start (unknown type, invalid params).
//   - Running moves anywhere within its attempt: Running -> Running is a new owner resuming the
//     run from its checkpoint after a crash or failover, Running -> Pending a resumed run
//     waiting for a slot.
//   - Paused resumes (Running, or Pending for a slot), stops, or fails to resume.
//   - A terminal task moves only by starting a new attempt (restart, retry, Running after
//     Stopped), or to Stopped within its attempt: a restart requested while spec.state is
//     Stopped, which clears a Finished or Failed outcome without running anything.
func legal(from, to Status) attemptRule {
	switch from {
	case Pending:
		switch to {
		case Pending, Running, Failed:
			return sameOrNew
		case Paused, Stopped:
			return same
		case Finished:
		}
	case Running:
		switch to {
		case Pending, Running, Paused, Finished, Failed, Stopped:
			return same
		}
	case Paused:
		switch to {
		case Pending, Running, Failed, Stopped:
			return same
		case Paused, Finished:
		}
	case Finished, Failed, Stopped:
		switch to {
		case Pending, Running, Failed:
			return newRun
		case Stopped:
			return same
		case Paused, Finished:
		}
	}
	return 0
}

// Legal reports whether from -> to is a step of the lifecycle when the attempt continues
// (newAttempt false) or starts anew (newAttempt true). Tools that audit histories use it.
func Legal(from, to Status, newAttempt bool) bool {
	rule := legal(from, to)
	if newAttempt {
		return rule&newRun != 0
	}
	return rule&same != 0
}

// Next checks that ev is a legal step from rec and returns the history row that records it.
// It is pure: nothing changes until the transition is applied with Apply (in memory) or
// written by the store (durably).
func Next(rec Record, ev Event) (Transition, error) {
	switch {
	case rec.Seq < 1:
		return Transition{}, fmt.Errorf("%w: the task has no record yet", ErrIllegal)
	case !ev.To.Valid():
		return Transition{}, fmt.Errorf("%w: unknown status %q", ErrIllegal, ev.To)
	case ev.Reason == "":
		return Transition{}, fmt.Errorf("%w: %s -> %s without a reason", ErrIllegal, rec.Status, ev.To)
	case ev.At.IsZero():
		return Transition{}, fmt.Errorf("%w: %s -> %s without a time", ErrIllegal, rec.Status, ev.To)
	case ev.Attempt != rec.Attempt && ev.Attempt != rec.Attempt+1:
		return Transition{}, fmt.Errorf("%w: %s -> %s from attempt %d to attempt %d", ErrIllegal, rec.Status, ev.To, rec.Attempt, ev.Attempt)
	}
	if !Legal(rec.Status, ev.To, ev.Attempt != rec.Attempt) {
		kind := "within attempt"
		if ev.Attempt != rec.Attempt {
			kind = "starting attempt"
		}
		return Transition{}, fmt.Errorf("%w: %s -> %s %s %d", ErrIllegal, rec.Status, ev.To, kind, ev.Attempt)
	}
	tr := Transition{
		Seq:               rec.Seq + 1,
		From:              rec.Status,
		To:                ev.To,
		Attempt:           ev.Attempt,
		Reason:            ev.Reason,
		Message:           ev.Message,
		At:                ev.At,
		RestartGeneration: max(rec.RestartGeneration, ev.RestartGeneration),
	}
	if ev.To == Pending && ev.Reason == ReasonRetryScheduled {
		tr.RetryAt = ev.RetryAt
	}
	return tr, nil
}

// Apply returns the record after tr. It is the only place where the lifecycle columns of a
// row are computed: the journal applies it in memory, the store writes its result, Replay
// folds a history with it. tr must come from Next (or a recorded history) for rec.
func Apply(rec Record, tr Transition) Record {
	next := rec
	next.Status, next.Attempt, next.Reason, next.Message, next.Seq = tr.To, tr.Attempt, tr.Reason, tr.Message, tr.Seq
	next.TransitionedAt = tr.At
	next.RestartGeneration = tr.RestartGeneration
	newAttempt := tr.Seq > 1 && NewAttempt(rec, tr)
	switch {
	case tr.Reason == ReasonRetryScheduled && newAttempt:
		next.Retries = rec.Retries + 1
	case newAttempt:
		next.Retries = 0
	}
	if newAttempt {
		next.StartTime = time.Time{}
	}
	if tr.To == Running {
		if next.StartTime.IsZero() {
			next.StartTime = tr.At
		}
		next.LastRunTime = tr.At
	}
	next.EndTime = time.Time{}
	if tr.To.Terminal() {
		next.EndTime = tr.At
	}
	next.RetryAt = tr.RetryAt
	return next
}

// Replay rebuilds a record from its complete history, checking every step. A history that
// does not start with seq 1, skips a seq or takes an illegal step is an error.
func Replay(history []Transition) (Record, error) {
	if len(history) == 0 || history[0].Seq != 1 || history[0].From != "" || history[0].To != Pending {
		return Record{}, fmt.Errorf("%w: a history starts with seq 1, NULL -> PENDING", ErrIllegal)
	}
	rec := Apply(Record{}, history[0])
	for _, tr := range history[1:] {
		if tr.Seq != rec.Seq+1 || tr.From != rec.Status {
			return rec, fmt.Errorf("%w: seq %d %s -> %s follows seq %d ending in %s", ErrIllegal, tr.Seq, tr.From, tr.To, rec.Seq, rec.Status)
		}
		want, err := Next(rec, Event{To: tr.To, Attempt: tr.Attempt, Reason: tr.Reason, Message: tr.Message, At: tr.At,
			RetryAt: tr.RetryAt, RestartGeneration: tr.RestartGeneration})
		if err != nil {
			return rec, fmt.Errorf("seq %d: %w", tr.Seq, err)
		}
		if want.RestartGeneration != tr.RestartGeneration || !want.RetryAt.Equal(tr.RetryAt) {
			return rec, fmt.Errorf("%w: seq %d carries restart generation %d / retry at %s, expected %d / %s", ErrIllegal,
				tr.Seq, tr.RestartGeneration, tr.RetryAt, want.RestartGeneration, want.RetryAt)
		}
		rec = Apply(rec, tr)
	}
	return rec, nil
}
