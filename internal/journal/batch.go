package journal

import (
	"context"

	"github.com/taskpilot/taskpilot/store"
)

// batchLoops is how many batches of transitions may be written at once: half as many as there
// are writers, at least one. While they are all in flight the next batches fill (group commit:
// a batch holds what queued during the previous one, so batches grow with the load and a lone
// transition waits for no one); a batch stuck on a row lock holds up only its own tasks.
func (j *Journal) batchLoops() int { return max(1, j.opts.Writers/2) }

// queuedTransition is a task's next transition, handed over by a writer, with the task still
// held in the queue (no other writer takes it) until finish.
type queuedTransition struct {
	uid string
	it  item
}

// recordBatches writes the handed-over transitions of many tasks in one statement each (at
// most MaxBatch, one per task: the queue hands a task to one writer at a time), each still
// guarded and fenced on its own row, until stop is closed.
func (j *Journal) recordBatches(ctx context.Context, stop <-chan struct{}) {
	batch := make([]queuedTransition, 0, j.opts.MaxBatch)
	for {
		select {
		case q := <-j.transitions:
			j.writeBatch(ctx, j.fill(append(batch[:0], q)))
		case <-stop:
			// The writers are gone: write what they handed over last (a reconciler may record
			// after the flush; when the flush gave up, ctx is cancelled and these fail at once).
			for b := j.fill(batch[:0]); len(b) > 0; b = j.fill(batch[:0]) {
				j.writeBatch(ctx, b)
			}
			return
		}
	}
}

// fill adds what waits to be written to batch, up to MaxBatch, without waiting.
func (j *Journal) fill(batch []queuedTransition) []queuedTransition {
	for len(batch) < j.opts.MaxBatch {
		select {
		case q := <-j.transitions:
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// writeBatch writes batch in one statement and finishes each of its tasks.
func (j *Journal) writeBatch(ctx context.Context, batch []queuedTransition) {
	writes := make([]store.TransitionWrite, len(batch))
	for i, q := range batch {
		writes[i] = *q.it.transition
	}
	writeCtx, cancel := context.WithTimeout(ctx, j.opts.WriteTimeout)
	errs := j.opts.Store.RecordTransitions(writeCtx, writes)
	cancel()
	j.opts.Metrics.batchWritten(len(writes))
	for i, q := range batch {
		j.finish(ctx, q.uid, q.it, errs[i])
	}
}
