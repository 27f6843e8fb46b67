package webui

import (
	"fmt"
	"time"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

// PhaseChart is a stacked bar chart of how many tasks were in each status over a window,
// sampled from the transition history.
type PhaseChart struct {
	Width, Height int
	Bars          []Bar
	Legend        []string
	Ticks         []Tick
	Max           int
	Empty         bool
}

// Bar is one sample: a stack of boxes, one per status with tasks.
type Bar struct {
	X, W  int
	Boxes []Box
	Title string
}

// Box is one status's share of a bar.
type Box struct {
	Status string
	Y, H   int
}

// Phase chart geometry.
const (
	pcWidth  = 960
	pcHeight = 140
	pcAxisH  = 20
	pcLeft   = 40
)

// statusOrder stacks the statuses bottom-up and orders the legend.
func statusOrder() []string {
	var order []string
	for _, s := range lifecycle.All() {
		order = append(order, string(s))
	}
	// Running at the bottom, where the eye lands first.
	order[0], order[1] = order[1], order[0]
	return order
}

// buildPhaseChart draws counts sampled at from, from+step, ... to.
func buildPhaseChart(counts []taskdb.PhaseCount, from, to time.Time, step time.Duration) PhaseChart {
	pc := PhaseChart{Width: pcWidth, Height: pcHeight + pcAxisH, Legend: statusOrder()}
	n := int(to.Sub(from)/step) + 1
	samples := make([]map[string]int, n)
	for _, c := range counts {
		i := int(c.At.Sub(from) / step)
		if i < 0 || i >= n {
			continue
		}
		if samples[i] == nil {
			samples[i] = map[string]int{}
		}
		samples[i][c.Status] += c.Tasks
	}
	for _, s := range samples {
		total := 0
		for _, v := range s {
			total += v
		}
		pc.Max = max(pc.Max, total)
	}
	if pc.Max == 0 {
		pc.Empty = true
		return pc
	}
	slot := float64(pcWidth-pcLeft) / float64(n)
	barW := max(int(slot)-1, 1)
	for i, s := range samples {
		at := from.Add(time.Duration(i) * step)
		bar := Bar{X: pcLeft + int(float64(i)*slot), W: barW, Title: at.Local().Format("15:04:05")}
		y := pcHeight
		for _, st := range statusOrder() {
			v := s[st]
			if v == 0 {
				continue
			}
			h := max(v*pcHeight/pc.Max, 1)
			y -= h
			bar.Boxes = append(bar.Boxes, Box{Status: st, Y: y, H: h})
			bar.Title += fmt.Sprintf(", %s %d", st, v)
		}
		pc.Bars = append(pc.Bars, bar)
	}
	layout := "15:04"
	if step < time.Minute {
		layout = "15:04:05"
	}
	for i := 0; i < n; i += max(n/6, 1) {
		x := pcLeft + int(float64(i)*slot)
		if x > pcWidth-60 { // its label would be cut at the edge
			break
		}
		at := from.Add(time.Duration(i) * step)
		pc.Ticks = append(pc.Ticks, Tick{X: x, Label: at.Local().Format(layout)})
	}
	return pc
}
