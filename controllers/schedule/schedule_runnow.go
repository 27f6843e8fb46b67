package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// runNow creates the one child a run-now request asks for (the annotation
// tasks.taskpilot.dev/run-now, set by `kubectl taskpilot run-now`), whatever spec.suspend and
// concurrencyPolicy say: it is an explicit request, as `kubectl create job --from=cronjob/...`
// is. Like a slot, the request's row is written first (unique per request time), then the
// child is created; then the annotation is removed, unless a newer request replaced it
// meanwhile, so each request is looked at once.
func (s *Scheduler) runNow(ctx context.Context, l *look) error {
	value, ok := l.ts.Annotations[v1alpha1.AnnotationRunNow]
	if !ok {
		return nil
	}
	at, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		s.events.Eventf(l.ts, nil, corev1.EventTypeWarning, "RunNowIgnored", "Fire",
			"the %s annotation is not an RFC 3339 time: %q", v1alpha1.AnnotationRunNow, value)
		return s.clearRunNow(ctx, l.ts, value)
	}
	at = at.Truncate(time.Millisecond)
	row := store.Firing{ScheduleUID: string(l.ts.UID), Namespace: l.ts.Namespace, Schedule: l.ts.Name, Slot: at, Manual: true,
		Outcome: store.FiringCreated, TaskName: manualChildName(l.ts.Name, at), RecordedBy: s.identity,
		Reason: "run now: requested with the " + v1alpha1.AnnotationRunNow + " annotation"}
	won, _, err := s.store.RecordFirings(ctx, []store.Firing{row})
	if err != nil {
		return err
	}
	if len(won) == 1 { // else recorded by an earlier look, and settled with the other rows
		if _, _, err := s.settle(ctx, l, won[0], true); err != nil {
			return err
		}
		s.events.Eventf(l.ts, nil, corev1.EventTypeNormal, "RunNow", "Fire", "run now requested at %s: backgroundtask/%s",
			value, row.TaskName)
	}
	return s.clearRunNow(ctx, l.ts, value)
}

// clearRunNow removes the run-now annotation if it still holds value.
func (s *Scheduler) clearRunNow(ctx context.Context, ts *v1alpha1.TaskSchedule, value string) error {
	path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(v1alpha1.AnnotationRunNow, "~", "~0"), "/", "~1")
	patch, err := json.Marshal([]map[string]string{{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}})
	if err != nil {
		return fmt.Errorf("encode the patch that removes the run-now request: %w", err)
	}
	err = s.client.Patch(ctx, ts.DeepCopy(), client.RawPatch(types.JSONPatchType, patch))
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
		// Invalid (422): the test failed, a newer request is there for the next look.
		return fmt.Errorf("remove the run-now request of %s/%s: %w", ts.Namespace, ts.Name, err)
	}
	return nil
}

// manualChildName is the BackgroundTask of a run-now request at (to the millisecond, so two
// requests in one second make two runs).
func manualChildName(schedule string, at time.Time) string {
	return schedule + "-manual-" + strconv.FormatInt(at.UnixMilli(), 10)
}
