// Package kit holds what the controllers of package controllers and its sub-packages share:
// how they are woken, how long they wait for their caches and for a change on its way, the
// leader-only wrapper and the runnables that run on every replica, and the bounds of what they write.
package kit

import (
	"context"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/taskpilot/taskpilot/internal/sharding"
)

// CacheSyncForever is how long the controllers wait for their caches to fill at start-up:
// without end. controller-runtime's default (2 minutes) ends the process when the API server is
// away at start-up, which a Deployment answers with a crash loop and growing back-off; waiting
// keeps the process up and not ready (/readyz) until the API server answers.
const CacheSyncForever = 100 * 365 * 24 * time.Hour

// SettleDelay is how long to wait for a change that is on its way (a run stopping).
const SettleDelay = 200 * time.Millisecond

// MaxStatusMessage bounds a status message (characters).
const MaxStatusMessage = 4096

// LeaderOnly wraps a reconciler that acts only while this replica leads (leading says so): on
// the others a request is dropped, and a new leader looks at everything again. The controller
// itself runs on every replica (its cache stays warm for a takeover); taskpilot's leadership
// never ends the process, so the manager's own leader election cannot say who leads.
func LeaderOnly(leading func() bool, r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		if !leading() {
			return reconcile.Result{}, nil
		}
		return r.Reconcile(ctx, req)
	})
}

// EveryReplica runs a runnable on every replica, whatever the manager's own leader election
// (a program embedding taskpilot may elect a leader for its own controllers).
type EveryReplica struct{ manager.Runnable }

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (EveryReplica) NeedLeaderElection() bool { return false }

// TruncateRunes shortens s to at most n runes, the last an ellipsis (for a condition's or a
// row's message).
func TruncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// APITime is t as a status holds it (nil when zero), to the second: what a round trip through
// the API server keeps, so a status compares equal to the one it was written from.
func APITime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t).Rfc3339Copy()
	return &mt
}

// NonEmpty is s, or fallback when s is empty.
func NonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// AssignmentMoved reports whether an update changed a task's assignment labels (package
// sharding): the sharder moved it, or a replica drained it.
func AssignmentMoved(e event.UpdateEvent) bool {
	return sharding.LabelsOf(e.ObjectOld.GetLabels()) != sharding.LabelsOf(e.ObjectNew.GetLabels())
}
