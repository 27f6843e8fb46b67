package bulk

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// Wait waits until every task that was changed or already there reached what verb asks for
// (see reached), watching the tasks through lw (one list and one watch for them all; lw must
// cover every outcome's namespace). It updates the outcomes in place: tasks that got there
// get Waited and Phase set; tasks that did not when ctx ends, or that were deleted, become
// Failed with the reason.
func Wait(ctx context.Context, lw cache.ListerWatcher, verb Verb, outcomes []Outcome) error {
	pending := map[types.NamespacedName]*Outcome{}
	for i := range outcomes {
		if outcomes[i].Result != Failed {
			pending[outcomes[i].Key] = &outcomes[i]
		}
	}
	if len(pending) == 0 {
		return nil
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &v1alpha1.BackgroundTask{}, nil, func(ev watch.Event) (bool, error) {
		t, isTask := ev.Object.(*v1alpha1.BackgroundTask)
		if !isTask {
			return false, nil
		}
		o, waiting := pending[types.NamespacedName{Namespace: t.Namespace, Name: t.Name}]
		if !waiting {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			o.Result, o.Err, o.Detail = Failed, errDeleted, "deleted while waiting"
			delete(pending, o.Key)
			return len(pending) == 0, nil
		}
		o.Phase, o.message = t.Status.Phase, t.Status.Message
		if ok, note := reached(verb, o.before, t); ok {
			o.Waited = note
			delete(pending, o.Key)
		}
		return len(pending) == 0, nil
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, watchtools.ErrWatchClosed) && ctx.Err() == nil {
		return fmt.Errorf("watch tasks: %w", err)
	}
	for _, o := range pending {
		o.Result, o.Err = Failed, errNotReached
		o.Detail = fmt.Sprintf("still %s when the wait ended", phaseOrUnknown(o.Phase))
		if o.message != "" {
			o.Detail += ": " + o.message // e.g. waiting for a free runner slot
		}
	}
	return nil
}

var (
	errDeleted    = errors.New("deleted while waiting")
	errNotReached = errors.New("timed out waiting")
)

func phaseOrUnknown(p v1alpha1.Phase) string {
	if p == "" {
		return "without a phase"
	}
	return string(p)
}
