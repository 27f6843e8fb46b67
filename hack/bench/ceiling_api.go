package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// ceiling is a bare loop's result: the same writes as taskpilot needed, nothing else.
type ceiling struct {
	tasks    int
	writes   int
	elapsed  time.Duration
	perTask  string // the write mix of one task
	tasksSec float64
}

func (c ceiling) writesSec() float64 { return float64(c.writes) / c.elapsed.Seconds() }

// share spreads total over n tasks: task i gets total/n, plus one for the first total%n.
func share(total, n, i int) int {
	k := total / n
	if i < total%n {
		k++
	}
	return k
}

// apiCeiling creates n BackgroundTasks and applies updates metadata updates and statusUpdates
// status-subresource updates to them (spread evenly), workers at a time, with no operator
// running: the apiserver/etcd ceiling for taskpilot's write mix.
func apiCeiling(ctx context.Context, c client.Client, cs *kubernetes.Clientset, ns string, n, updates, statusUpdates, workers int) (ceiling, error) {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return ceiling{}, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	phases := []v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhaseRunning, v1alpha1.PhaseFinished}
	start := time.Now()
	err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		bt := &v1alpha1.BackgroundTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: taskName("ceil", i)},
			Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "noop", Params: &runtime.RawExtension{Raw: []byte(`{}`)}, State: v1alpha1.DesiredRunning},
		}
		if err := c.Create(ctx, bt); err != nil {
			return fmt.Errorf("ceiling create: %w", err)
		}
		for k := range share(updates, n, i) {
			bt.Finalizers = append(bt.Finalizers, fmt.Sprintf("bench.taskpilot.dev/f%d", k))
			if err := c.Update(ctx, bt); err != nil {
				return fmt.Errorf("ceiling update: %w", err)
			}
		}
		for k := range share(statusUpdates, n, i) {
			bt.Status = fakeStatus(phases[min(k, len(phases)-1)], bt.Generation)
			if err := c.Status().Update(ctx, bt); err != nil {
				return fmt.Errorf("ceiling status update: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return ceiling{}, err
	}
	el := time.Since(start)
	return ceiling{
		tasks: n, writes: n + updates + statusUpdates, elapsed: el,
		perTask:  fmt.Sprintf("1 create + %.2f update + %.2f status update", float64(updates)/float64(n), float64(statusUpdates)/float64(n)),
		tasksSec: float64(n) / el.Seconds(),
	}, nil
}

// fakeStatus is a status of the same shape and size as the operator's.
func fakeStatus(p v1alpha1.Phase, gen int64) v1alpha1.BackgroundTaskStatus {
	now := metav1.NewTime(time.Now()).Rfc3339Copy()
	cond := func(t, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: reason, Message: msg, LastTransitionTime: now, ObservedGeneration: gen}
	}
	s := v1alpha1.BackgroundTaskStatus{
		Phase: p, ObservedGeneration: gen, StartTime: &now, LastRunTime: &now,
		Conditions: []metav1.Condition{
			cond(v1alpha1.ConditionReady, "AsDesired", string(p)+" as desired"),
			cond(v1alpha1.ConditionProgressing, string(p), ""),
			cond(v1alpha1.ConditionDegraded, "NoFailure", ""),
			cond(v1alpha1.ConditionRecorded, "Recorded", "every transition is written to PostgreSQL"),
		},
	}
	if p == v1alpha1.PhaseFinished {
		s.EndTime = &now
		s.Result = &runtime.RawExtension{Raw: []byte(`{}`)}
	}
	return s
}

// statusCeiling writes one status (the operator's shape, phase Paused) to each of n existing
// BackgroundTasks named prefix-i, workers at a time, with the operator stopped: how many
// status writes per second this apiserver takes now. A pause of n tasks needs n of them, so
// n ÷ this is the least time until every CR can say Paused.
func statusCeiling(ctx context.Context, c client.Client, ns, prefix string, n, workers int) (float64, error) {
	start := time.Now()
	err := parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		var bt v1alpha1.BackgroundTask
		bt.Namespace, bt.Name = ns, taskName(prefix, i)
		body, err := json.Marshal(map[string]any{"status": fakeStatus(v1alpha1.PhasePaused, 1)})
		if err != nil {
			return err
		}
		if err := c.Status().Patch(ctx, &bt, client.RawPatch(types.MergePatchType, body)); err != nil {
			return fmt.Errorf("status ceiling patch: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
