package journal

import "fmt"

// DefaultMaxBacklogBytes bounds the memory the journal holds for PostgreSQL over all tasks.
const DefaultMaxBacklogBytes = 64 << 20

// eventOverhead is what a queued transition costs beyond its message, reason, result and
// progress (the event, its bookkeeping), and checkpointOverhead a queued checkpoint beyond its
// data: estimates that keep the bound honest for many small writes.
const (
	eventOverhead      = 256
	checkpointOverhead = 128
)

// weigh is what the task's unwritten changes hold in memory.
func (e *entry) weigh() int64 {
	var n int64
	for i := range e.events {
		p := &e.events[i]
		n += eventOverhead + int64(len(p.ev.Message)+len(p.ev.Reason)+len(p.result))
		if p.progress != nil {
			n += int64(len(*p.progress))
		}
	}
	if e.checkpoint != nil {
		n += checkpointOverhead + int64(len(e.checkpoint.data))
	}
	return n
}

// reweighLocked brings the journal's total up to date after e changed.
func (j *Journal) reweighLocked(e *entry) {
	w := e.weigh()
	j.bytes += w - e.weight
	e.weight = w
}

// Deferring says why new work should wait, or "" when it need not: past MaxBacklogBytes of
// unwritten changes (PostgreSQL is down or slow), the journal still takes everything runs
// produce (their transitions, a checkpoint per task), but the controller holds back what would
// produce more (starts, pauses, resumes) until the backlog is written. Nothing accepted is lost.
func (j *Journal) Deferring() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.bytes <= j.opts.MaxBacklogBytes {
		return ""
	}
	return fmt.Sprintf("%d transition(s) (%s) wait for PostgreSQL, more than the %s the operator holds: starts, pauses and resumes wait until they are written",
		j.backlogLocked(), bytesText(j.bytes), bytesText(j.opts.MaxBacklogBytes))
}

// BacklogBytes is the memory the unwritten changes hold.
func (j *Journal) BacklogBytes() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.bytes
}

func (j *Journal) backlogLocked() int {
	n := 0
	j.tasks.Range(func(_ string, e *entry) bool { n += len(e.events); return true })
	return n
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
