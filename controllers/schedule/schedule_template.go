package schedule

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// templateChecks remembers, per schedule, the generation whose template the API server was
// seen to accept, so that a template it refuses (an invalid label, an admission policy's no)
// shows in Ready and its slots are recorded missed, at the cost of one server-side dry-run
// create per generation. A refusal is not remembered: it is checked again at the next look
// (the task-type catalog an admission policy reads may be published a moment later).
type templateChecks struct {
	mu       sync.Mutex
	accepted map[types.NamespacedName]templateCheck
}

type templateCheck struct {
	uid        types.UID
	generation int64
}

// refusal says why the API server refuses ts's template ("": it accepts it, or it cannot tell
// now). A generation that the status already shows as looked at and not refused is not
// dry-run again, so a new leader does not dry-run every schedule of the cluster.
func (t *templateChecks) refusal(ctx context.Context, c client.Client, ts *v1alpha1.TaskSchedule, now time.Time) string {
	key := types.NamespacedName{Namespace: ts.Namespace, Name: ts.Name}
	t.mu.Lock()
	got, ok := t.accepted[key]
	t.mu.Unlock()
	if ok && got.uid == ts.UID && got.generation == ts.Generation {
		return ""
	}
	ready := meta.FindStatusCondition(ts.Status.Conditions, v1alpha1.ConditionReady)
	if ts.Status.ObservedGeneration == ts.Generation && ready != nil && ready.Reason != reasonTemplateRefused {
		t.accept(ts)
		return ""
	}
	bt, err := childOf(ts, childName(ts.Name, now.Truncate(time.Second)), now, false, c)
	if err != nil {
		return ""
	}
	err = c.Create(ctx, bt, client.DryRunAll)
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		t.accept(ts)
	case apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err):
		return err.Error()
	}
	return ""
}

func (t *templateChecks) accept(ts *v1alpha1.TaskSchedule) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.accepted == nil {
		t.accepted = map[types.NamespacedName]templateCheck{}
	}
	t.accepted[types.NamespacedName{Namespace: ts.Namespace, Name: ts.Name}] = templateCheck{uid: ts.UID, generation: ts.Generation}
}

// refused forgets an acceptance a real create contradicts.
func (t *templateChecks) refused(ts *v1alpha1.TaskSchedule) {
	t.forget(types.NamespacedName{Namespace: ts.Namespace, Name: ts.Name})
}

// forget drops what is known of a schedule.
func (t *templateChecks) forget(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accepted, key)
}

const reasonTemplateRefused = "TemplateRefused"
