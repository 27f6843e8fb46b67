package bulk

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// Result is what happened to one task.
type Result string

// Results, in the order the summary counts them.
const (
	Changed      Result = "changed"       // spec was patched
	AlreadyThere Result = "already there" // spec already said so; nothing written
	Failed       Result = "failed"        // see Outcome.Err
)

// Target is one task to act on. Obj is the object as already read (by a list), or nil to read
// it first.
type Target struct {
	Key types.NamespacedName
	Obj *v1alpha1.BackgroundTask
}

// Outcome is the result for one task.
type Outcome struct {
	Key    types.NamespacedName
	Result Result
	// Detail says what changed ("spec.state Running → Paused") or why not.
	Detail string
	Err    error
	// Waited is set by Wait: how the task ended up ("" for the plain target phase).
	Waited string
	// Phase is the last phase seen (by Wait, or when applying).
	Phase v1alpha1.Phase

	// message is the last status.message Wait saw, to explain a task that did not get there.
	message string

	before before
}

// Options tunes Apply.
type Options struct {
	// Concurrency bounds the patches in flight (default 16).
	Concurrency int
	// Progress, if set, is called after each task with the number done and failed so far.
	// Calls are serialised.
	Progress func(done, failed, total int)
}

// DefaultConcurrency is the default bound on patches in flight.
const DefaultConcurrency = 16

// Apply applies verb to every target, at most opts.Concurrency at a time, and returns one
// outcome per target in the targets' order. A failure of one task never stops the others.
func Apply(ctx context.Context, c client.Client, verb Verb, targets []Target, opts Options) []Outcome {
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	out := make([]Outcome, len(targets))
	var (
		mu           sync.Mutex
		done, failed int
		g            errgroup.Group
	)
	g.SetLimit(n)
	for i, tg := range targets {
		g.Go(func() error {
			o := applyOne(ctx, c, verb, tg)
			mu.Lock()
			defer mu.Unlock()
			out[i] = o
			done++
			if o.Result == Failed {
				failed++
			}
			if opts.Progress != nil {
				opts.Progress(done, failed, len(targets))
			}
			return nil // a failure is an outcome; the others go on
		})
	}
	_ = g.Wait()
	return out
}

// applyOne decides the change from the object it holds and writes it; a restart only if that
// object is still current, and on a conflict it reads the task again and decides again.
func applyOne(ctx context.Context, c client.Client, verb Verb, tg Target) Outcome {
	o := Outcome{Key: tg.Key}
	obj := tg.Obj
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if obj == nil {
			obj = &v1alpha1.BackgroundTask{}
			if err := c.Get(ctx, tg.Key, obj); err != nil {
				return err
			}
		}
		cur := obj
		obj = nil // a retry reads again
		body, describe := verb.change(cur)
		o.Detail, o.Phase = describe, cur.Status.Phase
		o.before = before{Phase: cur.Status.Phase, Attempt: cur.Status.Attempt,
			Generation: cur.Generation, RestartGeneration: cur.Spec.RestartGeneration}
		if body == nil {
			o.Result = AlreadyThere
			return nil
		}
		patched := cur.DeepCopy()
		if verb.restarts() {
			// restartGeneration+1 is computed from what was read, so the write must apply to
			// exactly that: a resourceVersion in a merge patch is a precondition, and the API
			// server answers a conflict if the task changed meanwhile (then it is read again).
			// Setting spec.state needs no such guard: it is the same whatever it was before,
			// and the operator's status writes would make it conflict all the time.
			body = withResourceVersion(body, cur.ResourceVersion)
		}
		patch := client.RawPatch(types.MergePatchType, body)
		if err := c.Patch(ctx, patched, patch, client.FieldOwner(FieldManager)); err != nil {
			return err
		}
		o.Result = Changed
		o.before.Generation, o.before.RestartGeneration = patched.Generation, patched.Spec.RestartGeneration
		return nil
	})
	if err != nil {
		o.Result, o.Err, o.Detail = Failed, err, explain(err)
	}
	return o
}

// withResourceVersion adds metadata.resourceVersion to a merge patch body `{"spec":...}`.
func withResourceVersion(body []byte, rv string) []byte {
	return fmt.Appendf(nil, `{"metadata":{"resourceVersion":%q},%s`, rv, body[1:])
}

// explain turns an API error into the short reason the summary shows.
func explain(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		s := status.Status()
		switch {
		case apierrors.IsNotFound(err):
			return "not found"
		case apierrors.IsForbidden(err):
			return "forbidden: " + s.Message
		case apierrors.IsConflict(err):
			return "kept changing while being updated; try again"
		}
		return s.Message
	}
	return err.Error()
}
