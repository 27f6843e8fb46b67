package runner

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

const (
	// itemFlushEvery bounds how long an outcome waits to be written with others; itemFlushBatch
	// writes at once when that many have ended.
	itemFlushEvery = 20 * time.Millisecond
	itemFlushBatch = 512
	// itemFinishGrace is how long a cancelled run still tries to record its items' outcomes.
	itemFinishGrace = 10 * time.Second
	// maxItemFailuresShown: the failures a run keeps for its status and its message.
	maxItemFailuresShown = 5
)

// errNoItems: a task type with items was given a BackgroundTask without spec.items.
var errNoItems = errors.New("this task type runs items: its BackgroundTask needs spec.items")

// itemsRun is the run of a task type with items: it claims items in batches, executes up to
// Parallelism at once on goroutines of its own, records their outcomes in batches, pauses
// between items and reports the counts. Its loop runs on the run goroutine, so Yield is called
// where it must be.
type itemsRun[V any] struct {
	Base
	task ItemTask[V]
}

// itemDone is an execution's end, sent by an item goroutine.
type itemDone struct {
	item ClaimedItem
	err  error
}

// itemsLoop is one run's state, owned by the run goroutine. Outcomes are recorded by a writer
// goroutine, one batch at a time, while the loop goes on claiming and running items.
type itemsLoop[V any] struct {
	ctx      context.Context
	ctl      Control
	host     ItemsHost
	src      ItemSource
	task     ItemTask[V]
	done     chan itemDone
	inflight int
	outcomes []ItemOutcome
	oldest   time.Time // when the oldest unwritten outcome ended
	counts   ItemCounts
	// writes hands a batch to the writer, written hands back how it went; writing is the batch
	// being written (nil: none), at most one at a time.
	writes  chan []ItemOutcome
	written chan itemsWritten
	writing []ItemOutcome
}

// itemsWritten is the writer's answer for one batch.
type itemsWritten struct {
	failed []int
	err    error
}

func (r *itemsRun[V]) Run(ctx context.Context, ctl Control) (json.RawMessage, error) {
	host, ok := ctl.(ItemsHost)
	if !ok {
		return nil, Permanent(errNoItems)
	}
	src, ok := host.Items()
	if !ok {
		return nil, Permanent(errNoItems)
	}
	counts, err := src.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin the items: %w", err)
	}
	l := &itemsLoop[V]{ctx: ctx, ctl: ctl, host: host, src: src, task: r.task, counts: counts,
		done: make(chan itemDone, max(1, src.Parallelism())), writes: make(chan []ItemOutcome), written: make(chan itemsWritten, 1)}
	go l.writer()
	defer close(l.writes) // every way out of run has its last batch written first
	l.report()
	if err := l.run(); err != nil {
		return nil, err
	}
	if n := l.counts.Pending + l.counts.Running; n > 0 {
		// Never Finished with work left: the counts say the loop ended early (a retry)
		return nil, fmt.Errorf("%d of %d items still to run when the run ended", n, l.counts.Total())
	}
	if l.counts.Failed > 0 {
		return nil, l.failedError()
	}
	return json.Marshal(ItemsResult{Items: l.counts.Total()})
}

// writer records the batches it is handed. A write outlives the run's cancellation (up to
// itemFinishGrace), so a stopped run's items are recorded interrupted rather than left running.
func (l *itemsLoop[V]) writer() {
	for batch := range l.writes {
		l.written <- l.finish(batch)
	}
}

// finish records one batch; a panic in the source is the batch's error, as a panic in a hook
// is the run's.
func (l *itemsLoop[V]) finish(batch []ItemOutcome) (w itemsWritten) {
	defer func() {
		if p := recover(); p != nil {
			w.err = fmt.Errorf("panic recording item outcomes: %v\n%s", p, trimStack(debug.Stack()))
		}
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), itemFinishGrace)
	defer cancel()
	w.failed, w.err = l.src.Finish(ctx, batch)
	return w
}

// run executes items until none is pending and none runs, or the run is cancelled.
func (l *itemsLoop[V]) run() error {
	par := max(1, l.src.Parallelism())
	drained := false // the last claim found nothing pending since the last write
	for {
		if l.host.Pausing() {
			// Let the items in flight end and record them, then park.
			if err := l.settle(); err != nil {
				return l.failed(err)
			}
			drained = false // an item retried by what settle recorded may be pending again
		}
		// The pause point only with nothing in flight and everything recorded: a pause requested
		// after the check above must not park the run (and free its slot) while items still
		// execute or their outcomes are not yet in PostgreSQL.
		if l.inflight == 0 && l.writing == nil && len(l.outcomes) == 0 {
			if err := l.ctl.Yield(l.ctx); err != nil {
				return l.cancelled(err)
			}
		} else if l.ctx.Err() != nil {
			return l.cancelled(context.Cause(l.ctx))
		}
		free := par - l.inflight
		// Backpressure: no more claims while a batch is written and a full one waits behind it.
		backlogged := l.writing != nil && len(l.outcomes) >= itemFlushBatch
		wantClaim := !drained && !backlogged && free > 0 && (l.inflight == 0 || free >= max(1, par/4))
		if wantClaim {
			items, err := l.claim(free)
			if err != nil {
				return l.failed(fmt.Errorf("claim items: %w", err))
			}
			for _, it := range items {
				if l.ctx.Err() != nil {
					l.interrupt(it) // claimed as the run was cancelled: never executed
					continue
				}
				l.start(it)
			}
			if len(items) == 0 {
				drained = true
			}
		}
		if drained && l.inflight == 0 && l.writing == nil {
			if len(l.outcomes) == 0 {
				return nil // nothing pending, nothing running, nothing to write
			}
			l.write()
		}
		wrote, err := l.wait(!wantClaim || drained)
		if err != nil {
			return l.failed(err)
		}
		if wrote {
			drained = false // a retried item may be pending again
		}
		if l.writing == nil && (len(l.outcomes) >= itemFlushBatch || (len(l.outcomes) > 0 && time.Since(l.oldest) >= itemFlushEvery)) {
			l.write()
		}
	}
}

// write hands the oldest collected outcomes, at most itemFlushBatch, to the writer.
func (l *itemsLoop[V]) write() {
	n := min(len(l.outcomes), itemFlushBatch)
	l.writing = l.outcomes[:n:n]
	l.outcomes = append([]ItemOutcome(nil), l.outcomes[n:]...)
	l.writes <- l.writing
}

// wait collects ended items and the writer's answer: when block, until one of them comes or
// the flush is due; then whatever else is ready. wrote says a batch was recorded.
func (l *itemsLoop[V]) wait(block bool) (wrote bool, err error) {
	if block && (l.inflight > 0 || l.writing != nil) {
		timer := time.NewTimer(itemFlushEvery)
		defer timer.Stop()
		select {
		case d := <-l.done:
			l.collect(d)
		case w := <-l.written:
			if err := l.applied(w); err != nil {
				return false, err
			}
			wrote = true
		case <-timer.C:
		case <-l.ctx.Done():
			return false, nil // the next look at ctx reports the cause
		}
	}
	for {
		select {
		case d := <-l.done:
			l.collect(d)
		case w := <-l.written:
			if err := l.applied(w); err != nil {
				return wrote, err
			}
			wrote = true
		default:
			return wrote, nil
		}
	}
}

// claim claims up to n pending items. The claim outlives the run's cancellation by up to
// itemFinishGrace, as a write does: cut short, its statement may still commit in PostgreSQL,
// and the items it took would be left running for a run that never hears of them.
func (l *itemsLoop[V]) claim(n int) ([]ClaimedItem, error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(l.ctx))
	defer cancel()
	stop := context.AfterFunc(l.ctx, func() {
		grace := time.NewTimer(itemFinishGrace)
		defer grace.Stop()
		select {
		case <-grace.C:
			cancel()
		case <-ctx.Done():
		}
	})
	defer stop()
	return l.src.Claim(ctx, n)
}

// interrupt records a claimed item as interrupted without executing it.
func (l *itemsLoop[V]) interrupt(it ClaimedItem) {
	l.counts.Pending--
	l.counts.Running++
	if len(l.outcomes) == 0 {
		l.oldest = time.Now()
	}
	l.outcomes = append(l.outcomes, ItemOutcome{Index: it.Index, Execution: it.Execution, Interrupted: true})
}

// start executes one item on a goroutine of its own.
func (l *itemsLoop[V]) start(it ClaimedItem) {
	l.inflight++
	l.counts.Pending--
	l.counts.Running++
	go func() {
		l.done <- itemDone{item: it, err: l.execute(it)}
	}()
}

// execute runs one item, turning a panic into its error.
func (l *itemsLoop[V]) execute(it ClaimedItem) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, trimStack(debug.Stack()))
		}
	}()
	var v V
	if len(it.Value) > 0 {
		dec := json.NewDecoder(bytes.NewReader(it.Value))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("decode item %d's value: %w", it.Index, err)
		}
	}
	l.ctl.Heartbeat()
	return l.task.RunItem(l.ctx, l.ctl, Item[V]{Index: it.Index, Value: v,
		IdempotencyKey: itemIdempotencyKey(l.ctl.Key(), it.Generation, it.Index)})
}

// collect turns an ended execution into an outcome to write.
func (l *itemsLoop[V]) collect(d itemDone) {
	l.inflight--
	o := ItemOutcome{Index: d.item.Index, Execution: d.item.Execution, Err: d.err}
	if d.err != nil && l.ctx.Err() != nil {
		o.Interrupted, o.Err = true, nil
	}
	if len(l.outcomes) == 0 {
		l.oldest = time.Now()
	}
	l.outcomes = append(l.outcomes, o)
}

// applied takes the writer's answer for the batch being written: the counts move on.
func (l *itemsLoop[V]) applied(w itemsWritten) error {
	batch := l.writing
	l.writing = nil
	if w.err != nil {
		return fmt.Errorf("record %d item outcomes: %w", len(batch), w.err)
	}
	gone := map[int]bool{}
	for _, idx := range w.failed {
		gone[idx] = true
	}
	for _, o := range batch {
		l.counts.Running--
		switch {
		case o.Interrupted:
			l.counts.Pending++
		case o.Err == nil:
			l.counts.Succeeded++
		case gone[o.Index]:
			l.counts.Failed++
			l.keepFailure(ItemFailure{Index: o.Index, Error: o.Err.Error()})
		default:
			l.counts.Pending++ // retried
		}
	}
	l.report()
	return nil
}

// drain waits for every item in flight to end and for the batch being written, then writes
// what is left and waits for that too.
func (l *itemsLoop[V]) drain() error {
	for l.inflight > 0 {
		l.collect(<-l.done)
	}
	var first error
	if l.writing != nil {
		first = l.applied(<-l.written)
	}
	for len(l.outcomes) > 0 {
		l.write()
		err := l.applied(<-l.written)
		if first == nil {
			first = err
		}
		if err != nil && l.ctx.Err() != nil {
			break // cancelled and PostgreSQL refuses: the next run's Begin takes the rest back
		}
	}
	return first
}

// keepFailure keeps the failures of the lowest indexes, as PostgreSQL lists them.
func (l *itemsLoop[V]) keepFailure(f ItemFailure) {
	fs := l.counts.FirstFailures
	i, _ := slices.BinarySearchFunc(fs, f.Index, func(a ItemFailure, idx int) int { return cmp.Compare(a.Index, idx) })
	if i >= maxItemFailuresShown {
		return
	}
	fs = slices.Insert(fs, i, f)
	l.counts.FirstFailures = fs[:min(len(fs), maxItemFailuresShown)]
}

// report publishes the counts as status.items and as progress.
func (l *itemsLoop[V]) report() {
	c := l.counts
	c.FirstFailures = append([]ItemFailure(nil), c.FirstFailures...)
	l.host.ReportItems(c)
	done := c.Succeeded + c.Failed
	progress := fmt.Sprintf("%d/%d items", done, c.Total())
	if c.Failed > 0 {
		progress += fmt.Sprintf(", %d failed", c.Failed)
	}
	l.ctl.SetProgress(progress)
}

// settle waits for every item in flight to end and records them, before a pause.
func (l *itemsLoop[V]) settle() error { return l.drain() }

// cancelled ends a cancelled run: its items are interrupted (their ctx is the run's), and
// their outcomes are recorded while the row is still this run's, so the next run finds them
// pending rather than left running.
func (l *itemsLoop[V]) cancelled(cause error) error {
	_ = l.drain() // items not recorded stay running: the next run's Begin takes them back
	return cause
}

// failed ends a run whose items could not be claimed or recorded: the items in flight end
// first (a run never leaves goroutines behind).
func (l *itemsLoop[V]) failed(err error) error {
	_ = l.drain()
	return err
}

// failedError says which items failed.
func (l *itemsLoop[V]) failedError() error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d items failed", l.counts.Failed, l.counts.Total())
	for i, f := range l.counts.FirstFailures {
		sep := ", e.g. "
		if i > 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%sitem %d: %s", sep, f.Index, firstLine(f.Error))
	}
	return errors.New(b.String())
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	const maxLen = 200
	if len(line) > maxLen {
		line = line[:maxLen] + "..."
	}
	return line
}

// trimStack keeps the first lines of a panic's stack.
func trimStack(stack []byte) string {
	lines := strings.SplitN(string(stack), "\n", 24)
	if len(lines) > 23 {
		lines = lines[:23]
	}
	return strings.Join(lines, "\n")
}
