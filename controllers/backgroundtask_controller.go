package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// Finalizer keeps a deleted BackgroundTask until its run is stopped and its row is marked
// deleted in PostgreSQL (history kept).
const Finalizer = "tasks.taskpilot.dev/finalizer"

// MaxParamsBytes bounds spec.params once serialized; larger params fail with InvalidParams.
const MaxParamsBytes = 32 << 10

// TaskRunner is the part of *runner.Runner the reconciler drives (an interface so the pure
// reconcile logic is unit-tested without goroutines).
type TaskRunner interface {
	StartTask(key runner.Key, spec runner.StartSpec) error
	PauseTask(key runner.Key) error
	ResumeTask(key runner.Key) error
	StopTask(key runner.Key) error
	Forget(key runner.Key) error
	Snapshot(key runner.Key) (runner.TaskSnapshot, bool)
}

// ReconcilerOptions are the reconciler's dependencies and settings.
type ReconcilerOptions struct {
	Client client.Client
	Store  store.Repository
	Runner TaskRunner
	// RunnerStarted is closed once the runner accepts tasks (nil: always).
	RunnerStarted <-chan struct{}
	Journal       *Journal
	Notifier      *Notifier
	Events        events.EventRecorder
	Clock         clock.PassiveClock
	// ProgressInterval is how often the status of a running task is refreshed with its
	// progress (a write only when the progress text changed).
	ProgressInterval time.Duration
	// ProgressUpdateQPS bounds progress-only status writes over all tasks (0: 20/s), so
	// thousands of running tasks cannot crowd out the writes that matter.
	ProgressUpdateQPS float32
	// StatusCoalesceWindow defers the first status write of a fresh run (see coalesceWait).
	StatusCoalesceWindow time.Duration
	// FinalizerTimeout bounds how long a deleted task waits for its run to stop and its record
	// to be written before the finalizer is removed anyway (with a Warning event).
	FinalizerTimeout time.Duration
	// DatabaseTimeout bounds the synchronous database calls of a reconcile (loading or
	// creating a task's row when it is first seen).
	DatabaseTimeout time.Duration
	// MaxConcurrentReconciles is the number of reconcile workers.
	MaxConcurrentReconciles int
}

// BackgroundTaskReconciler drives the runner toward each BackgroundTask's spec and mirrors the
// actual state into status.
type BackgroundTaskReconciler struct {
	opts            ReconcilerOptions
	progressLimiter flowcontrol.RateLimiter
}

// NewBackgroundTaskReconciler fills defaults and builds the reconciler.
func NewBackgroundTaskReconciler(opts ReconcilerOptions) *BackgroundTaskReconciler {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 10 * time.Second
	}
	if opts.FinalizerTimeout <= 0 {
		opts.FinalizerTimeout = time.Minute
	}
	if opts.DatabaseTimeout <= 0 {
		opts.DatabaseTimeout = 5 * time.Second
	}
	if opts.MaxConcurrentReconciles <= 0 {
		opts.MaxConcurrentReconciles = 8
	}
	if opts.ProgressUpdateQPS <= 0 {
		opts.ProgressUpdateQPS = 20
	}
	burst := max(1, int(opts.ProgressUpdateQPS))
	return &BackgroundTaskReconciler{opts: opts, progressLimiter: flowcontrol.NewTokenBucketRateLimiter(opts.ProgressUpdateQPS, burst)}
}

// SetupWithManager registers the controller. Spec changes arrive through the watch (status-only
// updates, our own writes, are filtered out); runner transitions and database writes arrive
// through the Notifier's channel.
func (r *BackgroundTaskReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.BackgroundTask{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.opts.Notifier.Events(), &handler.TypedEnqueueRequestForObject[*v1alpha1.BackgroundTask]{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.opts.MaxConcurrentReconciles,
			// Failed reconciles (the database is down while a task is first seen) back off to
			// 30s at most, not controller-runtime's default of 1000s, so tasks start soon after
			// an outage ends.
			RateLimiter: workqueue.NewTypedMaxOfRateLimiter(
				workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, 30*time.Second),
				&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(50), 500)},
			),
		}).
		Named("backgroundtask").
		Complete(r)
}

// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=backgroundtasks,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=backgroundtasks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tasks.taskpilot.dev,resources=backgroundtasks/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one BackgroundTask toward its spec: gather (CR, journal, runner), decide
// (pure), act on the runner or the journal, and write status only if it changed. It never
// waits for a task: runs report back through the Notifier.
func (r *BackgroundTaskReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if apierrors.IsConflict(err) {
		// Someone (the user, GitOps) changed the object since we read it: the newer version is
		// already on its way to us. Look again shortly, without logging an error.
		return ctrl.Result{RequeueAfter: settleDelay}, nil
	}
	return res, err
}

func (r *BackgroundTaskReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	if r.opts.RunnerStarted != nil {
		select {
		case <-r.opts.RunnerStarted:
		default: // the manager starts the runner and this controller concurrently
			return ctrl.Result{RequeueAfter: settleDelay}, nil
		}
	}
	bt := &v1alpha1.BackgroundTask{}
	if err := r.opts.Client.Get(ctx, req.NamespacedName, bt); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bt.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, bt)
	}
	uid := string(bt.UID)
	state, tracked := r.opts.Journal.Get(uid)
	// A tracked task got its finalizer before it was tracked: a cached copy without it is just
	// older than our own write, and adding it again would cost an API write and a conflict.
	if !tracked && !controllerutil.ContainsFinalizer(bt, Finalizer) {
		controllerutil.AddFinalizer(bt, Finalizer)
		if err := r.opts.Client.Update(ctx, bt); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}
	if !tracked {
		var err error
		state, err = r.track(ctx, bt)
		if err != nil {
			log.Info("cannot load the task's record from PostgreSQL; will retry", "error", err.Error())
			if _, werr := r.writeStatus(ctx, bt, TaskState{}, err.Error()); werr != nil {
				return ctrl.Result{}, werr
			}
			return ctrl.Result{}, fmt.Errorf("load record of %s: %w", req.NamespacedName, err)
		}
	}

	snap, inRunner := r.opts.Runner.Snapshot(runner.Key(bt.UID))
	r.opts.Journal.SetDesired(uid, desiredToStore(bt.Spec.State))
	if inRunner && snap.Attempt == state.Attempt {
		r.opts.Journal.SetProgress(uid, snap.Progress)
	}
	d := decide(r.decisionInput(bt, state, snap, inRunner))
	if d.Action != actNone {
		log.V(1).Info("acting", "action", d.Action, "why", d.Why, "attempt", d.Attempt)
	}
	actErr := r.act(bt, state, d)

	state, _ = r.opts.Journal.Get(uid)
	deferred, err := r.writeStatus(ctx, bt, state, "")
	if err != nil {
		return ctrl.Result{}, err
	}
	if actErr != nil {
		return ctrl.Result{}, actErr
	}
	after := r.requeueAfter(state, d)
	if deferred > 0 && (after == 0 || deferred < after) {
		after = deferred
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// track loads the task's row (adoption after an operator restart or a leader change) or
// creates it (a new task).
func (r *BackgroundTaskReconciler) track(ctx context.Context, bt *v1alpha1.BackgroundTask) (TaskState, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.DatabaseTimeout)
	defer cancel()
	nn := types.NamespacedName{Namespace: bt.Namespace, Name: bt.Name}
	observed := bt.Status.ObservedRestartGeneration
	var row *store.Task
	if bt.Status.Phase != "" {
		var err error
		row, err = r.opts.Store.GetTask(ctx, string(bt.UID))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return TaskState{}, fmt.Errorf("get row: %w", err)
		}
		// A missing row (a database restored from an old backup) is created again below.
	}
	if row == nil {
		// Never reconciled: almost always a new task, so create without looking first (one
		// statement). Create is idempotent: an existing row comes back as it is.
		row = &store.Task{
			UID:          string(bt.UID),
			Namespace:    bt.Namespace,
			Name:         bt.Name,
			TaskName:     bt.Spec.TaskName,
			DesiredState: desiredToStore(bt.Spec.State),
		}
		created, err := r.opts.Store.CreateTask(ctx, row)
		if err != nil {
			return TaskState{}, fmt.Errorf("create row: %w", err)
		}
		if created && bt.Status.Phase == "" {
			// A new task honours the restartGeneration it was created with.
			observed = bt.Spec.RestartGeneration
		}
	}
	return r.opts.Journal.Track(nn, row, observed), nil
}

func (r *BackgroundTaskReconciler) decisionInput(bt *v1alpha1.BackgroundTask, s TaskState, snap runner.TaskSnapshot, inRunner bool) decisionInput {
	return decisionInput{
		Desired:                   bt.Spec.State,
		RestartGeneration:         bt.Spec.RestartGeneration,
		ObservedRestartGeneration: s.ObservedRestartGeneration,
		MaxRetries:                int(bt.Spec.MaxRetries),
		Now:                       r.opts.Clock.Now(),
		Observed: observedTask{
			Status:        s.Status,
			Attempt:       s.Attempt,
			Reason:        s.Reason,
			At:            s.At,
			HasCheckpoint: len(s.Checkpoint) > 0,
			Handed:        s.HandedAttempt > 0 && s.HandedAttempt >= s.Attempt,
			RunnerActive:  inRunner && !snap.State.Terminal(),
			Fenced:        s.Fenced,
		},
	}
}

// act carries out a decision. Runner calls only change memory and return at once.
func (r *BackgroundTaskReconciler) act(bt *v1alpha1.BackgroundTask, s TaskState, d decision) error {
	uid := string(bt.UID)
	key := runner.Key(bt.UID)
	var err error
	switch d.Action {
	case actNone:
	case actStart:
		spec, specErr := r.startSpec(bt, d.Attempt)
		if specErr == nil {
			if d.Resume {
				spec.Checkpoint = s.Checkpoint
			}
			r.opts.Journal.MarkHanded(uid, d.Attempt)
			specErr = r.opts.Runner.StartTask(key, spec)
		}
		err = r.startFailed(bt, s, d.Attempt, specErr)
	case actPause:
		err = ignoreSettled(r.opts.Runner.PauseTask(key))
	case actResume:
		err = ignoreSettled(r.opts.Runner.ResumeTask(key))
	case actStop:
		err = ignoreSettled(r.opts.Runner.StopTask(key))
	case actRecord:
		err = r.opts.Journal.Record(uid, *d.Change)
	}
	if err == nil && d.ObserveRestart {
		r.opts.Journal.ObserveRestart(uid, bt.Spec.RestartGeneration)
	}
	return err
}

// startFailed turns a start error into the task's outcome: a spec that can never run fails for
// good (terminal error, no requeue); anything else is retried by the workqueue.
func (r *BackgroundTaskReconciler) startFailed(bt *v1alpha1.BackgroundTask, s TaskState, attempt int, err error) error {
	if err == nil || errors.Is(err, runner.ErrAlreadyActive) {
		return nil
	}
	reason := ""
	switch {
	case errors.Is(err, runner.ErrUnknownTaskType):
		reason = v1alpha1.ReasonUnknownTaskType
	case errors.Is(err, runner.ErrInvalidParams):
		reason = v1alpha1.ReasonInvalidParams
	default:
		return fmt.Errorf("start attempt %d: %w", attempt, err)
	}
	uid := string(bt.UID)
	r.opts.Journal.MarkHanded(uid, 0)
	if s.Status.Terminal() && s.Reason == reason {
		return reconcile.TerminalError(err)
	}
	if rerr := r.opts.Journal.Record(uid, Change{To: store.StatusFailed, Attempt: max(s.Attempt, attempt), Reason: reason, Message: err.Error()}); rerr != nil {
		return rerr
	}
	return reconcile.TerminalError(err)
}

// startSpec builds the runner's spec for attempt; oversized params are InvalidParams.
func (r *BackgroundTaskReconciler) startSpec(bt *v1alpha1.BackgroundTask, attempt int) (runner.StartSpec, error) {
	spec := runner.StartSpec{TaskName: bt.Spec.TaskName, Attempt: attempt}
	if bt.Spec.Params != nil && len(bt.Spec.Params.Raw) > 0 {
		if n := len(bt.Spec.Params.Raw); n > MaxParamsBytes {
			return spec, fmt.Errorf("spec.params is %d bytes, more than the %d allowed: %w", n, MaxParamsBytes, runner.ErrInvalidParams)
		}
		spec.Params = json.RawMessage(bt.Spec.Params.Raw)
	}
	if bt.Spec.Timeout != nil {
		spec.Timeout = bt.Spec.Timeout.Duration
	}
	return spec, nil
}

// writeStatus writes the status computed from state if it differs from the stored one, and
// tells the transitions since the last Event. It returns how long to wait before writing when
// the write is deferred to coalesce the first phases of a fresh run.
func (r *BackgroundTaskReconciler) writeStatus(ctx context.Context, bt *v1alpha1.BackgroundTask, state TaskState, dbProblem string) (time.Duration, error) {
	live := ""
	if snap, ok := r.opts.Runner.Snapshot(runner.Key(bt.UID)); ok && snap.Attempt == state.Attempt {
		live = snap.Progress
	}
	if state.Status == "" {
		state.ObservedRestartGeneration = bt.Status.ObservedRestartGeneration
	}
	next := buildStatus(statusInput{
		Generation:      bt.Generation,
		Desired:         bt.Spec.State,
		Previous:        bt.Status,
		State:           state,
		LiveProgress:    live,
		DatabaseProblem: dbProblem,
	})
	if !equality.Semantic.DeepEqual(bt.Status, next) {
		if wait := r.coalesceWait(bt.Status.Phase, next.Phase, r.opts.Clock.Since(state.At)); wait > 0 {
			return wait, nil
		}
		if progressOnly(bt.Status, next) && !r.progressLimiter.TryAccept() {
			return 0, nil // over the progress budget: the next periodic refresh writes it
		}
		// Replace the whole status with a JSON patch: this controller is its only writer, so no
		// resourceVersion precondition is needed, and a cached copy that lags our own previous
		// write (common under load) does not turn into a conflict and a retry.
		patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": next}})
		if err != nil {
			return 0, fmt.Errorf("encode status: %w", err)
		}
		if err := r.opts.Client.Status().Patch(ctx, bt, client.RawPatch(types.JSONPatchType, patch)); err != nil {
			return 0, fmt.Errorf("write status: %w", err)
		}
	}
	announce(r.opts.Events, bt, r.opts.Journal.TakeUnannounced(string(bt.UID)))
	return 0, nil
}

// coalesceWait defers the first status write of a fresh run (phase still empty or Pending)
// while it is younger than StatusCoalesceWindow: a task that finishes within the window gets
// one status write, Finished, instead of Running then Finished. API writes are the scarce
// resource (docs/benchmarks.md); later phases (Paused, Stopped, Failed…) are written at once.
func (r *BackgroundTaskReconciler) coalesceWait(current, next v1alpha1.Phase, age time.Duration) time.Duration {
	window := r.opts.StatusCoalesceWindow
	if window <= 0 || (current != "" && current != v1alpha1.PhasePending) ||
		(next != v1alpha1.PhasePending && next != v1alpha1.PhaseRunning) || age >= window {
		return 0
	}
	return window - age
}

// progressOnly reports whether next differs from current in the progress text alone.
func progressOnly(current, next v1alpha1.BackgroundTaskStatus) bool {
	if current.Progress == next.Progress {
		return false
	}
	same := next
	same.Progress = current.Progress
	return equality.Semantic.DeepEqual(current, same)
}

func (r *BackgroundTaskReconciler) requeueAfter(s TaskState, d decision) time.Duration {
	after := d.RequeueAfter
	if s.Status == store.StatusRunning && (after == 0 || after > r.opts.ProgressInterval) {
		after = r.opts.ProgressInterval
	}
	return after
}

// ignoreSettled treats "already there" answers of the runner as success: the decision was made
// from a snapshot the run has since moved past, and its transition is on the way.
func ignoreSettled(err error) error {
	if errors.Is(err, runner.ErrTerminal) || errors.Is(err, runner.ErrNotFound) {
		return nil
	}
	return err
}
