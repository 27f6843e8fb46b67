package journal

// Ownership is what this process may still do with a task it tracks: one state, set by the
// outcome of the journal's writes (and by Release), read by the reconciler, the hand-over, the
// deletion and the status writer alike.
type Ownership uint8

const (
	// Owned: this process owns the row; it records the task's transitions and writes its status.
	Owned Ownership = iota
	// Released: this process gave the row up after handing the run over (Release); another
	// process claims it and continues from the record.
	Released
	// Fenced: a write was refused because another process owns the row now (View.FencedBy);
	// this process stops its run and records nothing more.
	Fenced
	// Stale: the row is not what this process believes (changed or missing); it stops its run and
	// adopts the task again from the row.
	Stale
	// Deleted: the row is soft-deleted; the task is over for good.
	Deleted
)

// String names the state for logs.
func (o Ownership) String() string {
	switch o {
	case Owned:
		return "Owned"
	case Released:
		return "Released"
	case Fenced:
		return "Fenced"
	case Stale:
		return "Stale"
	case Deleted:
		return "Deleted"
	}
	return "Unknown"
}

// Writes reports whether this process still records the task: queues its transitions,
// checkpoints and columns, and writes its status. Only an owner does.
func (o Ownership) Writes() bool { return o == Owned }

// Lost reports whether the task was taken from this process's hands without its asking
// (fenced, stale, deleted): the reconciler stops the local run and lets the task go.
func (o Ownership) Lost() bool { return o == Fenced || o == Stale || o == Deleted }
