package webui

import (
	"fmt"
	"slices"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

// Timeline is the drawing of one task's history: one lane per attempt, one bar per stretch of
// time in a status. Coordinates are computed here so the template only places shapes.
type Timeline struct {
	Width, Height int
	Lanes         []Lane
	Ticks         []Tick
	// Empty: nothing recorded (no database, or no row yet).
	Empty bool
}

// Lane is one attempt's row.
type Lane struct {
	Attempt  int
	Y        int
	Segments []Segment
}

// Segment is the task in one status from one transition to the next.
type Segment struct {
	Status  string
	X, W    int
	Title   string // tooltip: status, times, reason
	Current bool   // the status the task is in now
}

// Tick is a labelled time on the axis.
type Tick struct {
	X     int
	Label string
}

// Timeline geometry, in SVG user units.
const (
	tlWidth   = 960
	tlGutter  = 90 // lane labels
	tlLaneH   = 26
	tlBarH    = 18
	tlAxisH   = 22
	tlMinBarW = 3 // a terminal status is drawn as a mark this wide
	tlTicks   = 5
)

// buildTimeline lays out transitions (in seq order) up to now. Attempt 0 (created, not yet
// started) is drawn on attempt 1's lane: that wait belongs to the first run. A terminal status
// that was the last transition is a mark, not a bar stretching to now.
func buildTimeline(trs []taskdb.Transition, now time.Time) Timeline {
	if len(trs) == 0 {
		return Timeline{Width: tlWidth, Height: tlAxisH, Empty: true}
	}
	start := trs[0].At
	last := trs[len(trs)-1]
	end := now
	if lifecycle.Status(last.To).Terminal() {
		end = last.At
	}
	span := end.Sub(start)
	// A little room after the last change, so its mark or bar is visible.
	span += max(span/20, time.Second)
	plot := float64(tlWidth - tlGutter - 10)
	x := func(t time.Time) int { return tlGutter + int(plot*float64(t.Sub(start))/float64(span)) }

	lanes := map[int]*Lane{}
	for i, tr := range trs {
		attempt := max(tr.Attempt, 1)
		lane, ok := lanes[attempt]
		if !ok {
			lane = &Lane{Attempt: attempt}
			lanes[attempt] = lane
		}
		isLast := i == len(trs)-1
		until := now
		if !isLast {
			until = trs[i+1].At
		} else if lifecycle.Status(tr.To).Terminal() {
			until = tr.At
		}
		x0, x1 := x(tr.At), x(until)
		lane.Segments = append(lane.Segments, Segment{
			Status:  tr.To,
			X:       x0,
			W:       max(x1-x0, tlMinBarW),
			Title:   segmentTitle(tr, until, isLast),
			Current: isLast,
		})
	}
	tl := Timeline{Width: tlWidth}
	keys := make([]int, 0, len(lanes))
	for k := range lanes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		lanes[k].Y = i * tlLaneH
		tl.Lanes = append(tl.Lanes, *lanes[k])
	}
	tl.Height = len(keys)*tlLaneH + tlAxisH
	for i := range tlTicks {
		at := start.Add(span * time.Duration(i) / tlTicks)
		tl.Ticks = append(tl.Ticks, Tick{X: x(at), Label: at.Local().Format("15:04:05")})
	}
	return tl
}

func segmentTitle(tr taskdb.Transition, until time.Time, isLast bool) string {
	d := until.Sub(tr.At).Round(time.Second)
	how := fmt.Sprintf("for %s", d)
	if isLast && !lifecycle.Status(tr.To).Terminal() {
		how = fmt.Sprintf("since %s ago", d)
	}
	return fmt.Sprintf("%s, attempt %d, from %s %s (%s)", tr.To, tr.Attempt, tr.At.Local().Format("15:04:05"), how, tr.Reason)
}
