package main

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// warmUp runs a small batch through the leader and deletes it, so that the memory baseline is
// taken from an operator that has loaded every code path once, with no task tracked (as at the
// end of the run).
func warmUp(ctx context.Context, e *env, n int) error {
	for i := range n {
		bt := &v1alpha1.BackgroundTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: warmupNamespace, Name: fmt.Sprintf("warmup-%02d", i)},
			Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "witness", Params: &runtime.RawExtension{Raw: []byte(`{"steps":2,"interval":"100ms","checkpointEvery":1}`)}},
		}
		if i%2 == 1 {
			bt.Spec.TaskName, bt.Spec.Params.Raw = "noop", []byte(`{}`)
		}
		if err := e.client.Create(ctx, bt); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	err := waitUntil(ctx, time.Minute, func() (bool, error) {
		crs, err := listCRs(ctx, e.client, warmupNamespace)
		if err != nil {
			return false, err
		}
		for _, cr := range crs {
			if cr.phase != v1alpha1.PhaseFinished {
				return false, nil
			}
		}
		return len(crs) == n, nil
	})
	if err != nil {
		return fmt.Errorf("warm-up tasks did not finish: %w", err)
	}
	return deleteAll(ctx, e, warmupNamespace, time.Minute)
}

// deleteAll deletes every BackgroundTask of namespace ns and waits until they are gone (their
// finalizers released), for up to timeout.
func deleteAll(ctx context.Context, e *env, ns string, timeout time.Duration) error {
	crs, err := listCRs(ctx, e.client, ns)
	if err != nil {
		return err
	}
	for _, cr := range crs {
		obj := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cr.name}}
		if err := e.client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s: %w", cr.name, err)
		}
	}
	return waitUntil(ctx, timeout, func() (bool, error) {
		var list v1alpha1.BackgroundTaskList
		if err := e.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, nil //nolint:nilerr // the API server may be slow to answer; keep waiting
		}
		return len(list.Items) == 0, nil
	})
}

// settled reports whether every task whose spec says Running or Stopped is in a terminal phase
// and no deletion is pending: what invariant 4 expects once the faults are over.
func settled(o observation) bool {
	for _, cr := range o.crs {
		if cr.deleting {
			return false
		}
		switch cr.state {
		case v1alpha1.DesiredRunning:
			if cr.phase != v1alpha1.PhaseFinished && cr.phase != v1alpha1.PhaseFailed {
				return false
			}
		case v1alpha1.DesiredStopped:
			if !cr.phase.Terminal() {
				return false
			}
		case v1alpha1.DesiredPaused:
		}
	}
	return true
}

// waitUntil polls cond every second until it is true, fails, or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
