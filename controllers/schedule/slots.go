package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronSchedule is a parsed spec.schedule read in its time zone. Slots are instants; the cron
// expression is matched against the wall clock of the zone, and each wall-clock match becomes
// exactly one instant (wallToInstant), so a DST change neither doubles nor drops a slot.
type cronSchedule struct {
	wall cron.Schedule // matched against wall-clock times written as UTC
	loc  *time.Location
}

// cronParser reads five fields, six with seconds first, and descriptors (@daily, @every 1h).
func cronParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// parseSchedule parses spec.schedule in spec.timeZone (UTC when empty). A TZ= or CRON_TZ=
// prefix in the expression is refused: the zone belongs in timeZone, where it is validated.
func parseSchedule(expr, zone string) (cronSchedule, error) {
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return cronSchedule{}, fmt.Errorf("schedule %q: set the time zone in spec.timeZone, not in the expression", expr)
	}
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return cronSchedule{}, fmt.Errorf("timeZone %q: %w", zone, err)
	}
	s, err := cronParser().Parse(expr)
	if err != nil {
		return cronSchedule{}, fmt.Errorf("schedule %q: %w", expr, err)
	}
	return cronSchedule{wall: s, loc: loc}, nil
}

// next is the first slot strictly after t (zero: none, an impossible date).
func (c cronSchedule) next(t time.Time) time.Time {
	w := asWall(t.In(c.loc))
	for range 3 {
		if w = c.wall.Next(w); w.IsZero() {
			return time.Time{}
		}
		if at := wallToInstant(w, c.loc); at.After(t) {
			return at
		}
		// w's first occurrence was at or before t: t is in the second occurrence of a repeated
		// (fall-back) hour, whose slots ran in the first. Go on after the repeated hour.
		end := repeatedHourEnd(t, c.loc)
		if !end.After(w) {
			return time.Time{}
		}
		w = end.Add(-time.Nanosecond)
	}
	return time.Time{}
}

// repeatedHourEnd is the wall clock (written as UTC) at which the repeated stretch that t lies
// in ends, when the clock was set back at the start of t's zone period; zero otherwise.
func repeatedHourEnd(t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	start, _ := local.ZoneBounds()
	if start.IsZero() {
		return time.Time{}
	}
	_, offNow := local.Zone()
	_, offBefore := start.Add(-time.Second).In(loc).Zone()
	if offBefore <= offNow {
		return time.Time{} // the clock went forward or did not move: nothing repeats
	}
	return asWall(start.In(loc)).Add(time.Duration(offBefore-offNow) * time.Second)
}

// asWall writes the wall clock of t as a UTC time, the form the cron library matches on
// without DST surprises of its own.
func asWall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// wallToInstant is the instant a wall-clock time w (written as UTC) of loc denotes: its first
// occurrence when the clock shows it twice (fall back), the end of the gap when it never shows
// it (spring forward: 02:30 becomes 03:00). The result never goes backwards as w goes forward.
func wallToInstant(w time.Time, loc *time.Location) time.Time {
	guess := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
	// The offsets in force a day before and after cover any single transition around w.
	_, before := w.Add(-24 * time.Hour).In(loc).Zone()
	_, after := w.Add(24 * time.Hour).In(loc).Zone()
	var first time.Time
	for _, off := range []int{before, after} {
		at := w.Add(-time.Duration(off) * time.Second)
		if asWall(at.In(loc)).Equal(w) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if !first.IsZero() {
		return first
	}
	// In a gap: read with the offset before it, w lies in the zone period after the gap, which
	// begins where the gap ends.
	start, _ := w.Add(-time.Duration(before) * time.Second).In(loc).ZoneBounds()
	if start.IsZero() {
		return guess
	}
	return start
}

// slotsBetween lists the slots in (from, to], oldest first, keeping at most the newest keep of
// them; dropped counts the older ones left out (a very frequent schedule after a long outage).
func (c cronSchedule) slotsBetween(from, to time.Time, keep int) (slots []time.Time, dropped int) {
	keep = max(keep, 1)
	ring := make([]time.Time, 0, min(keep, 64))
	head := 0 // the oldest kept slot, once the ring is full
	for at := c.next(from); !at.IsZero() && !at.After(to); at = c.next(at) {
		if len(ring) < keep {
			ring = append(ring, at)
			continue
		}
		ring[head] = at
		head = (head + 1) % keep
		dropped++
	}
	return append(ring[head:len(ring):len(ring)], ring[:head]...), dropped
}
