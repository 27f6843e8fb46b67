package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
	"github.com/taskpilot/taskpilot/internal/plugin/kube"
	"github.com/taskpilot/taskpilot/internal/taskdb"
	"github.com/taskpilot/taskpilot/runner"
)

// ErrNoDatabase is returned by Client.History when the client was made without a database URL.
var ErrNoDatabase = errors.New("operator: the client has no database URL (ClientOptions.DatabaseURL)")

// ErrOtherTaskType is returned by Enqueue when a BackgroundTask of the name exists and runs
// another task type: the name is taken, the task was not created.
var ErrOtherTaskType = errors.New("operator: a BackgroundTask of that name runs another task type")

// Client creates, drives and follows BackgroundTasks from a Go program: a web handler that
// enqueues work, a CI job that waits for it, a tool that pauses a batch. It writes with the
// credentials of cfg (which need create, get, list, watch and patch on backgroundtasks) and
// reads history through the documented schema of PostgreSQL, read-only. Its verbs are the
// kubectl plugin's.
type Client struct {
	kube      client.WithWatch
	namespace string
	history   *taskdb.DB
	enqueued  *prometheus.CounterVec
}

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Namespace holds the client's tasks. Required.
	Namespace string
	// DatabaseURL is the taskpilot database, for History (a read-only role is enough; empty:
	// History returns ErrNoDatabase).
	DatabaseURL string
	// Metrics registers the client's metric, taskpilot_client_enqueued_total (none when nil).
	Metrics prometheus.Registerer
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
	c := &Client{kube: kube, namespace: opts.Namespace, enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskpilot_client_enqueued_total",
		Help: "Tasks this program enqueued with operator.Client, by task type and result: created, exists (the name was taken by a task of the type: idempotent), invalid (params refused before sending), error.",
	}, []string{"task_type", "result"})}
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(c.enqueued); err != nil {
			return nil, fmt.Errorf("operator: client metrics: %w", err)
		}
	}
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

// WithQueue starts the task through TaskQueue queue (in the task's namespace) with priority:
// the queue bounds how many of its tasks run at once across every replica, and orders them
// (higher priority first). See README, Queues.
func WithQueue(queue string, priority int32) TaskOption {
	return func(bt *v1alpha1.BackgroundTask) { bt.Spec.Queue, bt.Spec.Priority = queue, priority }
}

// WithSpec sets other spec fields: retries, backoff, timeouts, state (created Paused, say).
func WithSpec(set func(*v1alpha1.BackgroundTaskSpec)) TaskOption {
	return func(bt *v1alpha1.BackgroundTask) { set(&bt.Spec) }
}

// Enqueue creates the BackgroundTask name that runs params' task type with params, once they
// pass their own Validate (an error wrapping runner.ErrInvalidParams otherwise, and nothing is
// created). The span in ctx, if any, becomes the parent of the task's runs' spans (the
// traceparent annotation). It is idempotent by name: when a task of that name exists already and runs the same
// type, it is returned as it is (created false), so a request retried after a timeout creates
// one task. A task of that name running another type is ErrOtherTaskType.
func (c *Client) Enqueue(ctx context.Context, name string, params runner.Params, opts ...TaskOption) (bt *v1alpha1.BackgroundTask, created bool, err error) {
	defer func() {
		result := "created"
		switch {
		case errors.Is(err, runner.ErrInvalidParams):
			result = "invalid"
		case err != nil:
			result = "error"
		case !created:
			result = "exists"
		}
		c.enqueued.WithLabelValues(params.TaskName(), result).Inc()
	}()
	return c.enqueue(ctx, name, params, opts...)
}

func (c *Client) enqueue(ctx context.Context, name string, params runner.Params, opts ...TaskOption) (*v1alpha1.BackgroundTask, bool, error) {
	if v, ok := params.(runner.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, false, fmt.Errorf("operator: enqueue %s/%s: %w", c.namespace, name, &runner.ParamsError{TaskName: params.TaskName(), Err: err})
		}
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, false, fmt.Errorf("operator: encode the params of %s: %w", name, err)
	}
	bt := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: name},
		Spec:       v1alpha1.BackgroundTaskSpec{TaskName: params.TaskName(), Params: &runtime.RawExtension{Raw: raw}},
	}
	// The caller's span, when there is one, is the parent of every run of the task (with
	// tracing on in the operator). An explicit annotation (WithAnnotations) wins.
	if tp := engine.TraceParent(trace.SpanContextFromContext(ctx)); tp != "" {
		bt.Annotations = map[string]string{v1alpha1.AnnotationTraceParent: tp}
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

// NewTask is one task for EnqueueMany.
type NewTask struct {
	Name    string
	Params  runner.Params
	Options []TaskOption
}

// Enqueued is what became of one NewTask.
type Enqueued struct {
	Task    *v1alpha1.BackgroundTask
	Created bool
	Err     error
}

// enqueueConcurrency bounds the creates EnqueueMany has in flight: the API server, not the
// client, is the limit (docs/benchmarks.md).
const enqueueConcurrency = 8

// EnqueueMany enqueues every task (as Enqueue does each), several at a time, and returns one
// result per task in their order; the error joins the failures (nil when every task was created
// or existed already).
func (c *Client) EnqueueMany(ctx context.Context, tasks []NewTask) ([]Enqueued, error) {
	out := make([]Enqueued, len(tasks))
	var g errgroup.Group
	g.SetLimit(enqueueConcurrency)
	for i, t := range tasks {
		g.Go(func() error {
			bt, created, err := c.Enqueue(ctx, t.Name, t.Params, t.Options...)
			out[i] = Enqueued{Task: bt, Created: created, Err: err}
			return nil
		})
	}
	_ = g.Wait()
	var errs []error
	for _, e := range out {
		errs = append(errs, e.Err)
	}
	return out, errors.Join(errs...)
}

// Get reads the task.
func (c *Client) Get(ctx context.Context, name string) (*v1alpha1.BackgroundTask, error) {
	bt := &v1alpha1.BackgroundTask{}
	if err := c.kube.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, bt); err != nil {
		return nil, fmt.Errorf("operator: get BackgroundTask %s/%s: %w", c.namespace, name, err)
	}
	return bt, nil
}

// List lists the client's tasks that match selector (labels.Everything() for all).
func (c *Client) List(ctx context.Context, selector labels.Selector) ([]v1alpha1.BackgroundTask, error) {
	var list v1alpha1.BackgroundTaskList
	if err := c.kube.List(ctx, &list, client.InNamespace(c.namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("operator: list BackgroundTasks in %s: %w", c.namespace, err)
	}
	return list.Items, nil
}

// Pause sets the tasks' spec.state to Paused: each parks at its next pause point. Like the
// other verbs it acts on each task on its own (a task already Paused is left as it is), and
// returns the failures joined.
func (c *Client) Pause(ctx context.Context, names ...string) error {
	return c.apply(ctx, bulk.Pause, names)
}

// Resume sets the tasks' spec.state to Running: each continues where it paused.
func (c *Client) Resume(ctx context.Context, names ...string) error {
	return c.apply(ctx, bulk.Resume, names)
}

// Stop sets the tasks' spec.state to Stopped: each run is cancelled (its Post runs).
func (c *Client) Stop(ctx context.Context, names ...string) error {
	return c.apply(ctx, bulk.Stop, names)
}

// Restart bumps the tasks' spec.restartGeneration: each runs a new attempt from scratch.
func (c *Client) Restart(ctx context.Context, names ...string) error {
	return c.apply(ctx, bulk.Restart, names)
}

// RetryFailed runs again the items that did not succeed of tasks with items (spec.items): a
// restart (spec.restartGeneration + 1) that keeps the items that succeeded
// (spec.items.retryFailedGeneration). A task without items is left as it is.
func (c *Client) RetryFailed(ctx context.Context, names ...string) error {
	return c.apply(ctx, bulk.RetryFailed, names)
}

// apply runs verb on the named tasks with the plugin's bulk verbs.
func (c *Client) apply(ctx context.Context, verb bulk.Verb, names []string) error {
	targets := make([]bulk.Target, 0, len(names))
	for _, n := range names {
		targets = append(targets, bulk.Target{Key: types.NamespacedName{Namespace: c.namespace, Name: n}})
	}
	var errs []error
	for _, o := range bulk.Apply(ctx, c.kube, verb, targets, bulk.Options{}) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("operator: %s %s: %w", verb, o.Key, o.Err))
		}
	}
	return errors.Join(errs...)
}

// IsNotFound reports whether err says the task does not exist (from Get, Wait or a verb).
func IsNotFound(err error) bool { return apierrors.IsNotFound(err) }

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
	lw := kube.TaskListWatch(c.kube, c.namespace, nil, fields.OneTermEqualSelector("metadata.name", name))
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
	From    v1alpha1.Phase // "" for seq 1, the creation
	To      v1alpha1.Phase
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
		out = append(out, Transition{Seq: t.Seq, From: phaseOf(t.From), To: phaseOf(t.To), Attempt: t.Attempt, Reason: t.Reason,
			Message: t.Message, At: t.At})
	}
	return out, nil
}

// phaseOf is the phase of a status as the database spells it ("RUNNING" is Running).
func phaseOf(status string) v1alpha1.Phase { return v1alpha1.Phase(lifecycle.Status(status).Phase()) }
