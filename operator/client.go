package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/taskdb"
	"github.com/taskpilot/taskpilot/runner"
)

// ErrNoDatabase is returned by Client.History when the client was made without a database URL.
var ErrNoDatabase = errors.New("operator: the client has no database URL (ClientOptions.DatabaseURL)")

// ErrOtherTaskType is returned by Enqueue when a BackgroundTask of the name exists and runs
// another task type: the name is taken, the task was not created.
var ErrOtherTaskType = errors.New("operator: a BackgroundTask of that name runs another task type")

// Client creates BackgroundTasks and follows them from a Go program: a web handler that
// enqueues work, a CI job that waits for it. It writes with the credentials of cfg (which need
// create, get, list and watch on backgroundtasks) and reads history through the documented
// schema of PostgreSQL, read-only.
type Client struct {
	kube      client.WithWatch
	namespace string
	history   *taskdb.DB
}

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Namespace holds the client's tasks. Required.
	Namespace string
	// DatabaseURL is the taskpilot database, for History (a read-only role is enough; empty:
	// History returns ErrNoDatabase).
	DatabaseURL string
}

// NewClient connects to the API server of cfg (and to PostgreSQL when opts name it).
func NewClient(ctx context.Context, cfg *rest.Config, opts ClientOptions) (*Client, error) {
	if opts.Namespace == "" {
		return nil, errors.New("operator: ClientOptions.Namespace is required")
	}
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		return nil, err
	}
	kube, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("operator: connect to the API server: %w", err)
	}
	c := &Client{kube: kube, namespace: opts.Namespace}
	if opts.DatabaseURL != "" {
		if c.history, err = taskdb.Open(ctx, opts.DatabaseURL); err != nil {
			return nil, fmt.Errorf("operator: %w", err)
		}
	}
	return c, nil
}

// Close releases the database connections.
func (c *Client) Close() {
	if c.history != nil {
		c.history.Close()
	}
}

// TaskOption adjusts a BackgroundTask that Enqueue creates.
type TaskOption func(*v1alpha1.BackgroundTask)

// WithLabels adds labels (for selection: `kubectl taskpilot pause -l ...`; tasks see them in
// Control.Labels).
func WithLabels(labels map[string]string) TaskOption {
	return func(bt *v1alpha1.BackgroundTask) {
		if bt.Labels == nil {
			bt.Labels = map[string]string{}
		}
		maps.Copy(bt.Labels, labels)
	}
}

// WithAnnotations adds annotations (tasks see them in Control.Annotations).
func WithAnnotations(annotations map[string]string) TaskOption {
	return func(bt *v1alpha1.BackgroundTask) {
		if bt.Annotations == nil {
			bt.Annotations = map[string]string{}
		}
		maps.Copy(bt.Annotations, annotations)
	}
}

// WithSpec sets other spec fields: retries, backoff, timeouts, state (created Paused, say).
func WithSpec(set func(*v1alpha1.BackgroundTaskSpec)) TaskOption {
	return func(bt *v1alpha1.BackgroundTask) { set(&bt.Spec) }
}

// Enqueue creates the BackgroundTask name that runs P's task type with params p. It is
// idempotent by name: when a task of that name exists already and runs P's type, it is
// returned as it is (created false), so a request retried after a timeout creates one task. A
// task of that name running another type is ErrOtherTaskType.
func Enqueue[P runner.Params](ctx context.Context, c *Client, name string, p P, opts ...TaskOption) (*v1alpha1.BackgroundTask, bool, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, false, fmt.Errorf("operator: encode the params of %s: %w", name, err)
	}
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: name},
		Spec:       v1alpha1.BackgroundTaskSpec{TaskName: p.TaskName(), Params: &runtime.RawExtension{Raw: raw}},
	}
	for _, o := range opts {
		o(bt)
	}
	err = c.kube.Create(ctx, bt)
	if err == nil {
		return bt, true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, false, fmt.Errorf("operator: create BackgroundTask %s/%s: %w", c.namespace, name, err)
	}
	existing := &v1alpha1.BackgroundTask{}
	if err := c.kube.Get(ctx, client.ObjectKeyFromObject(bt), existing); err != nil {
		return nil, false, fmt.Errorf("operator: read the existing BackgroundTask %s/%s: %w", c.namespace, name, err)
	}
	if existing.Spec.TaskName != bt.Spec.TaskName {
		return existing, false, fmt.Errorf("%w: %s/%s runs %q, not %q", ErrOtherTaskType, c.namespace, name, existing.Spec.TaskName, bt.Spec.TaskName)
	}
	return existing, false, nil
}

// Get reads the task.
func (c *Client) Get(ctx context.Context, name string) (*v1alpha1.BackgroundTask, error) {
	bt := &v1alpha1.BackgroundTask{}
	if err := c.kube.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, bt); err != nil {
		return nil, fmt.Errorf("operator: get BackgroundTask %s/%s: %w", c.namespace, name, err)
	}
	return bt, nil
}

// Wait waits, on a watch, until the task's status shows one of phases for its current spec
// (status.observedGeneration caught up with metadata.generation), and returns it. Without
// phases it waits for a terminal one (Finished, Failed, Stopped). ctx bounds the wait.
func (c *Client) Wait(ctx context.Context, name string, phases ...v1alpha1.Phase) (*v1alpha1.BackgroundTask, error) {
	reached := func(bt *v1alpha1.BackgroundTask) bool {
		if bt.Status.ObservedGeneration < bt.Generation {
			return false
		}
		if len(phases) == 0 {
			return bt.Status.Phase.Terminal()
		}
		return slices.Contains(phases, bt.Status.Phase)
	}
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			list := &v1alpha1.BackgroundTaskList{}
			return list, c.kube.List(ctx, list, client.InNamespace(c.namespace), &client.ListOptions{Raw: &o})
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return c.kube.Watch(ctx, &v1alpha1.BackgroundTaskList{}, client.InNamespace(c.namespace), &client.ListOptions{Raw: &o})
		},
	}
	var last *v1alpha1.BackgroundTask
	_, err := watchtools.UntilWithSync(ctx, lw, &v1alpha1.BackgroundTask{}, nil, func(e watch.Event) (bool, error) {
		switch e.Type {
		case watch.Deleted:
			return false, fmt.Errorf("operator: BackgroundTask %s/%s was deleted", c.namespace, name)
		case watch.Added, watch.Modified:
			bt, ok := e.Object.(*v1alpha1.BackgroundTask)
			if !ok {
				return false, nil
			}
			last = bt
			return reached(bt), nil
		case watch.Bookmark, watch.Error:
		}
		return false, nil
	})
	if err != nil {
		if last != nil && ctx.Err() != nil {
			return last, fmt.Errorf("operator: %s/%s is %s (wanted %v): %w", c.namespace, name, last.Status.Phase, phases, ctx.Err())
		}
		return last, fmt.Errorf("operator: wait for %s/%s: %w", c.namespace, name, err)
	}
	return last, nil
}

// Transition is one recorded transition of a task (a row of background_task_transitions).
type Transition struct {
	Seq     int64
	From    string // "" for seq 1, the creation
	To      string
	Attempt int
	Reason  string
	Message string
	At      time.Time
}

// History returns every transition recorded for the task, in order, from PostgreSQL: also for
// a task whose object is gone (its newest row of that name).
func (c *Client) History(ctx context.Context, name string) ([]Transition, error) {
	if c.history == nil {
		return nil, ErrNoDatabase
	}
	row, err := c.history.LatestTaskByName(ctx, c.namespace, name)
	if err != nil {
		return nil, fmt.Errorf("operator: history of %s/%s: %w", c.namespace, name, err)
	}
	trs, err := c.history.History(ctx, row.Text("uid"))
	if err != nil {
		return nil, fmt.Errorf("operator: history of %s/%s: %w", c.namespace, name, err)
	}
	out := make([]Transition, 0, len(trs))
	for _, t := range trs {
		out = append(out, Transition{Seq: t.Seq, From: t.From, To: t.To, Attempt: t.Attempt, Reason: t.Reason, Message: t.Message, At: t.At})
	}
	return out, nil
}
