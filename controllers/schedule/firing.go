package schedule

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// defaultSkipDeadline is how late a slot may start under catchUp Skip when
// startingDeadlineSeconds is unset: enough for a leader change at the slot, far less than any
// real outage.
const defaultSkipDeadline = 60 * time.Second

// defaultCatchUpRuns bounds catchUp All without maxRuns.
const defaultCatchUpRuns = 10

// maxSlotsPerPass bounds the slots one look at a schedule records one by one; older passed
// slots (a per-second schedule after hours of outage) are counted in the oldest row's reason.
const maxSlotsPerPass = 1000

// firingInput is everything a schedule's firings are planned from: the slots that passed since
// the last recorded one, the policies of the spec and the children that exist.
type firingInput struct {
	Schedule string // the schedule's name, for child names
	// Slots passed since the last recorded slot, oldest first; Dropped older ones left out.
	Slots   []time.Time
	Dropped int
	Now     time.Time
	Spec    v1alpha1.TaskScheduleSpec
	// Children are the schedule's BackgroundTasks that exist.
	Children []scheduledChild
	// JitterSeed makes a slot's jitter the same in every operator (the schedule's UID).
	JitterSeed string
	// Refused says why the API server refuses the template's BackgroundTask ("": it takes it):
	// a slot that would create one is missed instead.
	Refused string
}

// scheduledChild is one BackgroundTask of a schedule: its name, the slot (or run-now request
// time) it was created for, and whether it is still active (not Finished, Failed or Stopped).
type scheduledChild struct {
	Name   string
	Slot   time.Time
	Active bool
	// Manual: created by a run-now request, not by a slot.
	Manual bool
}

// plannedFiring is one slot's outcome, to record and then act on.
type plannedFiring struct {
	Slot    time.Time
	Outcome store.FiringOutcome
	Reason  string
	// Child is the BackgroundTask to create (created and replaced).
	Child string
	// Exists: Child exists already (created by a look that did not record it).
	Exists bool
	// Stop names the active children to stop first (replaced).
	Stop []string
}

// planFirings decides the outcome of every passed slot that is due (its jitter passed), in slot
// order: a slot held back by its jitter holds back the slots after it, so slots are recorded
// oldest first and the next look, which starts after the newest recorded slot, never leaves
// one out. It is pure: the same input gives the same plan in every operator. wait is how long
// until the first held-back slot is due (0: none).
func planFirings(in firingInput) (plan []plannedFiring, wait time.Duration) {
	var due []time.Time
	for _, slot := range in.Slots {
		if at := slot.Add(jitterOf(in.Spec.Jitter, in.JitterSeed, slot)); at.After(in.Now) {
			wait = at.Sub(in.Now)
			break
		}
		due = append(due, slot)
	}
	if len(due) == 0 {
		return nil, wait
	}
	missed := in.missedSlots(due)
	existing := map[int64]string{}
	for _, c := range in.Children {
		if !c.Manual {
			existing[c.Slot.UnixNano()] = c.Name
		}
	}
	var planned []string         // created by this plan, active from their slot on
	stopped := map[string]bool{} // replaced by this plan
	for i, slot := range due {
		f := plannedFiring{Slot: slot}
		// Only runs of earlier slots compete with this one; its own child is never among them.
		var active []string
		for _, name := range in.activeBefore(slot) {
			if !stopped[name] {
				active = append(active, name)
			}
		}
		active = append(active, planned...)
		switch why, isMissed := missed[i]; {
		case existing[slot.UnixNano()] != "":
			f.Outcome, f.Child, f.Exists = store.FiringCreated, existing[slot.UnixNano()], true
			f.Reason = "created by an earlier look that did not record it"
		case in.Spec.Suspend:
			f.Outcome, f.Reason = store.FiringSkipped, "Suspended: spec.suspend is true"
		case isMissed:
			f.Outcome, f.Reason = store.FiringMissed, why
		case len(active) > 0 && in.Spec.ConcurrencyPolicy == v1alpha1.ConcurrencyForbid:
			f.Outcome = store.FiringSkipped
			f.Reason = fmt.Sprintf("Forbid: %s still active (concurrencyPolicy Forbid)", strings.Join(active, ", "))
		case in.Refused != "":
			f.Outcome, f.Reason = store.FiringMissed, "Refused: the API server refuses the template's BackgroundTask: "+in.Refused
		case len(active) > 0 && in.Spec.ConcurrencyPolicy == v1alpha1.ConcurrencyReplace:
			f.Outcome, f.Child, f.Stop = store.FiringReplaced, childName(in.Schedule, slot), active
			f.Reason = fmt.Sprintf("Replace: stopped %s (concurrencyPolicy Replace)", strings.Join(active, ", "))
			for _, name := range active {
				stopped[name] = true
			}
			planned = []string{f.Child}
		default:
			f.Outcome, f.Child = store.FiringCreated, childName(in.Schedule, slot)
			f.Reason = lateness(in.Now, slot)
			planned = append(planned, f.Child)
		}
		plan = append(plan, f)
	}
	if in.Dropped > 0 && len(plan) > 0 {
		plan[0].Reason += fmt.Sprintf(" (and %d earlier slot(s) since the last recorded one, missed, not recorded one by one)", in.Dropped)
	}
	return plan, wait
}

// activeBefore names the active children of slots before slot, oldest first.
func (in firingInput) activeBefore(slot time.Time) []string {
	var out []string
	for _, c := range in.Children {
		if c.Active && c.Slot.Before(slot) {
			out = append(out, c.Name)
		}
	}
	return out
}

// missedSlots says which due slots may not start, by the catch-up policy and the starting
// deadline, and why; the others may.
func (in firingInput) missedSlots(due []time.Time) map[int]string {
	policy := v1alpha1.CatchUpSkip
	maxRuns := defaultCatchUpRuns
	if c := in.Spec.CatchUp; c != nil {
		if c.Policy != "" {
			policy = c.Policy
		}
		if c.MaxRuns != nil {
			maxRuns = int(*c.MaxRuns)
		}
	}
	deadline := time.Duration(0)
	if in.Spec.StartingDeadlineSeconds != nil {
		deadline = time.Duration(*in.Spec.StartingDeadlineSeconds) * time.Second
	} else if policy == v1alpha1.CatchUpSkip {
		deadline = defaultSkipDeadline
	}
	missed := map[int]string{}
	newest := len(due) - 1
	for i, slot := range due {
		late := in.Now.Sub(slot.Add(jitterOf(in.Spec.Jitter, in.JitterSeed, slot)))
		switch {
		case deadline > 0 && late > deadline:
			missed[i] = fmt.Sprintf("Late: %s late, past its starting deadline of %s (catchUp %s)", late.Truncate(time.Second), deadline, policy)
		case policy == v1alpha1.CatchUpAll && newest-i >= maxRuns:
			missed[i] = fmt.Sprintf("CatchUp: catchUp All runs at most the newest %d passed slot(s)", maxRuns)
		case policy != v1alpha1.CatchUpAll && i != newest:
			missed[i] = fmt.Sprintf("CatchUp: no operator fired it in time and a newer slot passed since (catchUp %s)", policy)
		}
	}
	return missed
}

// lateness says how late a slot was created, when it was (a leader change, a catch-up).
func lateness(now, slot time.Time) string {
	if late := now.Sub(slot); late >= time.Second {
		return fmt.Sprintf("created %s after its slot", late.Truncate(time.Second))
	}
	return ""
}

// childName is the BackgroundTask a slot creates: the slot in the name, so a slot cannot create
// two, in any number of operators.
func childName(schedule string, slot time.Time) string {
	return schedule + "-" + strconv.FormatInt(slot.Unix(), 10)
}

// jitterOf is the slot's start delay, in [0, jitter), drawn from the schedule's UID and the
// slot, so every operator computes the same.
func jitterOf(jitter *metav1.Duration, seed string, slot time.Time) time.Duration {
	if jitter == nil || jitter.Duration <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(seed))
	_, _ = h.Write([]byte(strconv.FormatInt(slot.Unix(), 10)))
	return time.Duration(h.Sum64() % uint64(jitter.Duration)) //nolint:gosec // jitter is positive
}
