package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// intent is one spec change the driver made, as the invariants need it.
type intent struct {
	at         time.Time // just before the first try of the request was sent
	kind       actionKind
	state      v1alpha1.DesiredState // spec.state after the change
	generation int64                 // spec.restartGeneration after the change
}

// driver plays the users and GitOps: it creates the load and applies the planned actions,
// retrying through API outages so that the sequence of changes is exactly the plan's.
type driver struct {
	c     client.Client
	pl    plan
	start time.Time

	mu      sync.Mutex
	uids    map[int]string
	intents map[int][]intent
	state   map[int]v1alpha1.DesiredState
	gen     map[int]int64
	deleted map[int]time.Time
	// seenBeforeDelete: the task had a status (the operator had recorded it) when deleted.
	seenBeforeDelete map[int]bool
	lastSpec         map[string]time.Time // uid -> time of the latest spec change
	failures         []string
}

func newDriver(c client.Client, pl plan) *driver {
	d := &driver{c: c, pl: pl, uids: map[int]string{}, intents: map[int][]intent{},
		state: map[int]v1alpha1.DesiredState{}, gen: map[int]int64{}, deleted: map[int]time.Time{}, seenBeforeDelete: map[int]bool{},
		lastSpec: map[string]time.Time{}}
	for i, t := range pl.tasks {
		d.state[i] = t.state
	}
	return d
}

// run creates the tasks and applies the actions on schedule, from start, until both are done.
func (d *driver) run(ctx context.Context, start time.Time) {
	d.start = start
	var wg sync.WaitGroup
	wg.Go(func() { d.createAll(ctx) })
	wg.Go(func() { d.actAll(ctx) })
	wg.Wait()
}

// sleepUntil waits until offset into the chaos phase; false when ctx ended.
func (d *driver) sleepUntil(ctx context.Context, offset time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(d.start.Add(offset))):
		return true
	}
}

// createAll creates the tasks at their planned times, eight requests in flight at most.
func (d *driver) createAll(ctx context.Context) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	// In the order of their creation times (the task with items is planned last).
	order := make([]int, len(d.pl.tasks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(d.pl.tasks[a].createAt, d.pl.tasks[b].createAt) })
	for _, i := range order {
		if !d.sleepUntil(ctx, d.pl.tasks[i].createAt) {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.create(ctx, i)
		})
	}
	wg.Wait()
}

func (d *driver) create(ctx context.Context, i int) {
	t := d.pl.tasks[i]
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: t.name},
		Spec: v1alpha1.BackgroundTaskSpec{
			TaskName: t.taskName, Params: &runtime.RawExtension{Raw: []byte(t.params)},
			State: t.state, MaxRetries: t.maxRetries, Queue: t.queue,
		},
	}
	if t.tenant != "" {
		bt.Labels = map[string]string{tenantLabel: t.tenant}
	}
	if t.timeout > 0 {
		bt.Spec.Timeout = &metav1.Duration{Duration: t.timeout}
	}
	if t.items > 0 {
		bt.Spec.Items = &v1alpha1.ItemsSpec{Count: &t.items, Parallelism: t.parallelism}
	}
	sent, err := d.retry(ctx, func() error {
		err := d.c.Create(ctx, bt.DeepCopy())
		if apierrors.IsAlreadyExists(err) { // an earlier try got through; its reply was lost
			return d.c.Get(ctx, client.ObjectKeyFromObject(bt), bt)
		}
		if err == nil {
			return d.c.Get(ctx, client.ObjectKeyFromObject(bt), bt)
		}
		return err
	})
	if err != nil {
		d.fail("create %s: %v", t.name, err)
		return
	}
	d.mu.Lock()
	d.uids[i] = string(bt.UID)
	d.intents[i] = append(d.intents[i], intent{at: sent, kind: actCreate, state: t.state})
	d.lastSpec[string(bt.UID)] = sent
	d.mu.Unlock()
}

// actAll applies the actions in order at their planned times.
func (d *driver) actAll(ctx context.Context) {
	for _, a := range d.pl.actions {
		if !d.sleepUntil(ctx, a.at) {
			return
		}
		uid, ok := d.waitCreated(ctx, a.task)
		if !ok {
			continue
		}
		d.apply(ctx, a, uid)
	}
}

// waitCreated waits until task i exists (its creation may lag during an API outage).
func (d *driver) waitCreated(ctx context.Context, i int) (string, bool) {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		d.mu.Lock()
		uid, ok := d.uids[i]
		d.mu.Unlock()
		if ok {
			return uid, true
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.fail("action on %s: never created", d.pl.tasks[i].name)
	return "", false
}

func (d *driver) apply(ctx context.Context, a action, uid string) {
	t := d.pl.tasks[a.task]
	obj := &v1alpha1.BackgroundTask{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: t.name}}
	d.mu.Lock()
	next := intent{kind: a.kind, state: d.state[a.task], generation: d.gen[a.task]}
	d.mu.Unlock()
	var patch string
	switch a.kind {
	case actPause:
		next.state = v1alpha1.DesiredPaused
	case actResume, actStart:
		next.state = v1alpha1.DesiredRunning
	case actStop:
		next.state = v1alpha1.DesiredStopped
	case actRestart:
		next.generation++
		patch = fmt.Sprintf(`{"spec":{"restartGeneration":%d}}`, next.generation)
	case actDelete, actCreate:
	}
	if patch == "" {
		patch = fmt.Sprintf(`{"spec":{"state":%q}}`, next.state)
	}
	seen := false
	sent, err := d.retry(ctx, func() error {
		if a.kind == actDelete {
			var cur v1alpha1.BackgroundTask
			if err := d.c.Get(ctx, client.ObjectKeyFromObject(obj), &cur); err == nil {
				seen = seen || cur.Status.Phase != ""
			}
			return client.IgnoreNotFound(d.c.Delete(ctx, obj))
		}
		return d.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
	})
	if err != nil {
		d.fail("%s %s: %v", a.kind, t.name, err)
		return
	}
	next.at = sent
	d.mu.Lock()
	defer d.mu.Unlock()
	d.intents[a.task] = append(d.intents[a.task], next)
	d.state[a.task], d.gen[a.task] = next.state, next.generation
	d.lastSpec[uid] = sent
	if a.kind == actDelete {
		d.deleted[a.task] = sent
		d.seenBeforeDelete[a.task] = seen
	}
}

// retry calls fn until it succeeds, for up to 90 s (an API server restart or a slow one), and
// returns when the first call was sent: a call whose reply was lost may have been applied, so
// the change may have taken effect from then on.
func (d *driver) retry(ctx context.Context, fn func() error) (time.Time, error) {
	first := time.Now()
	deadline := first.Add(90 * time.Second)
	for {
		err := fn()
		if err == nil {
			return first, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return first, err
		}
		select {
		case <-ctx.Done():
			return first, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (d *driver) fail(format string, args ...any) {
	d.mu.Lock()
	d.failures = append(d.failures, fmt.Sprintf(format, args...))
	d.mu.Unlock()
}

// recentlyChanged reports whether uid's spec changed within d of now (the operator may not
// have caught up yet).
func (d *driver) recentlyChanged(uid string, within time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Since(d.lastSpec[uid]) < within
}
