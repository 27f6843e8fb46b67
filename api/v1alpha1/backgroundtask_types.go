package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/taskpilot/taskpilot/api/lifecycle"
)

// DesiredState is the lifecycle state a user asks for in spec.state.
// +kubebuilder:validation:Enum=Running;Paused;Stopped
type DesiredState string

const (
	// DesiredRunning asks for the task to run (or keep running) until it finishes.
	DesiredRunning DesiredState = "Running"
	// DesiredPaused asks the task to park at its next pause point. A task created Paused stays
	// Pending until it is set Running.
	DesiredPaused DesiredState = "Paused"
	// DesiredStopped asks for the current run to be cancelled. Setting Running again afterwards
	// starts a new attempt from scratch.
	DesiredStopped DesiredState = "Stopped"
)

// Phase is the observed lifecycle phase of a BackgroundTask, written by the controller only: the
// recorded lifecycle.Status of the task, spelled as Kubernetes spells phases (PhaseOf). The
// "Entered from" and "Left to" lists below are the legal moves of lifecycle.Legal (a test keeps
// them equal).
// +kubebuilder:validation:Enum=Pending;Running;Paused;Finished;Failed;Stopped
type Phase string

const (
	// PhasePending: accepted but not running: just created, waiting for spec.startAfter, a
	// runner slot or memory, waiting for a retry's backoff, or restarted while spec.state is
	// Paused.
	// Entered from: Pending, Running, Paused, Finished, Failed, Stopped.
	// Left to: Pending, Running, Paused, Failed, Stopped.
	PhasePending Phase = "Pending"
	// PhaseRunning: the task's goroutine executes Pre/Run in its owner's process (Running to
	// Running: a new owner resumed it from its checkpoint, or it stalled and came back).
	// Entered from: Pending, Running, Paused, Finished, Failed, Stopped.
	// Left to: Pending, Running, Paused, Finished, Failed, Stopped.
	PhaseRunning Phase = "Running"
	// PhasePaused: parked at a pause point after spec.state became Paused; holds no runner slot.
	// Entered from: Pending, Running.
	// Left to: Pending, Running, Failed, Stopped.
	PhasePaused Phase = "Paused"
	// PhaseFinished (terminal): Run returned a result, in status.result. Only a new attempt
	// (a restartGeneration bump) leaves it, or a restart while spec.state is Stopped.
	// Entered from: Running.
	// Left to: Pending, Running, Failed, Stopped.
	PhaseFinished Phase = "Finished"
	// PhaseFailed (terminal): the attempt failed and no retry is due, or the spec can never run
	// (unknown task type, invalid params); reason says which.
	// Entered from: Pending, Running, Paused, Finished, Failed, Stopped.
	// Left to: Pending, Running, Failed, Stopped.
	PhaseFailed Phase = "Failed"
	// PhaseStopped (terminal): cancelled on request. spec.state Running again, or a
	// restartGeneration bump with spec.state Running, starts a new attempt.
	// Entered from: Pending, Running, Paused, Finished, Failed, Stopped.
	// Left to: Pending, Running, Failed, Stopped.
	PhaseStopped Phase = "Stopped"
)

// PhaseOf is the phase a recorded status shows (lifecycle.Status.Phase, typed).
func PhaseOf(s lifecycle.Status) Phase { return Phase(s.Phase()) }

// Terminal reports whether no further work happens in this phase without a new request.
func (p Phase) Terminal() bool {
	s, ok := lifecycle.StatusOfPhase(string(p))
	return ok && s.Terminal()
}

// Lifecycle is the desired state as the row's desired_state column spells it.
func (d DesiredState) Lifecycle() lifecycle.Desired {
	if d == "" {
		return lifecycle.DesiredRunning
	}
	return lifecycle.Desired(strings.ToUpper(string(d)))
}

// Condition reasons the controller sets that are not recorded transitions.
const (
	// ReasonScheduled: the task waits Pending for spec.startAfter (condition Ready).
	ReasonScheduled = "Scheduled"
	// ReasonResumedByResumeAt: the task runs because spec.resumeAt passed while spec.state
	// still says Paused (condition Ready).
	ReasonResumedByResumeAt = "ResumedAt"
)

// Condition types set on status.conditions.
const (
	// ConditionReady is True when the observed phase matches spec: running while Running is
	// desired, parked while Paused is desired, Stopped while Stopped is desired, or the task
	// finished. `kubectl wait --for=condition=Ready` after a patch waits for the change to land.
	ConditionReady = "Ready"
	// ConditionProgressing is True while work is queued or executing.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the last attempt failed (retrying or terminal).
	ConditionDegraded = "Degraded"
	// ConditionRecorded is False while transitions of this task are waiting to be written to
	// PostgreSQL (for example while the database is unreachable); they are kept in order and
	// written when it returns.
	ConditionRecorded = "Recorded"
	// ConditionStalled is True while a running task has shown no sign of life (a pause point,
	// progress, a checkpoint, a heartbeat) for spec.stallTimeout.
	ConditionStalled = "Stalled"
	// ConditionAbandoned is True while a run of the task that ignored its cancellation (a stop
	// or a timeout, past the stop grace) still executes in the operator: Go cannot stop a
	// goroutine, so the next run of the task waits until it returned.
	ConditionAbandoned = "Abandoned"
)

// AnnotationTraceParent on a BackgroundTask is the W3C traceparent of the span that created it
// (operator.Client sets it from its ctx, a schedule from its firing's span; a manifest or a
// script may set it by hand). With tracing on, every execution's span is a child of it,
// so the run appears in its creator's trace. A malformed value is ignored.
const AnnotationTraceParent = "tasks.taskpilot.dev/traceparent"

// MaxParamsBytes bounds spec.params once serialized: larger params fail with reason
// InvalidParams (params belong in the object only as much as a run needs to start).
const MaxParamsBytes = 32 << 10

// BackgroundTaskSpec is the desired state of a BackgroundTask: what to run and whether it
// should be running. Everything here belongs to the user (or GitOps); the controller never
// writes spec.
type BackgroundTaskSpec struct {
	// taskName is the registered task type to run, for example `countdown`, `sleep` or
	// `checksum`. It cannot be changed after creation: create a new BackgroundTask instead.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`
	TaskName string `json:"taskName"`

	// params are the task type's parameters, a JSON object passed to the task type, which
	// decodes it strictly (`kubectl taskpilot types NAME` shows its fields). At most 64
	// top-level keys, and 32 KiB once serialized (checked when a run starts: a larger object
	// fails with reason InvalidParams; the admission policy of config/admission refuses a
	// top-level value longer than that at apply). Keep bulk data elsewhere and pass a reference.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:MaxProperties=64
	Params *runtime.RawExtension `json:"params,omitempty"`

	// state is the lifecycle state you want: Running (default), Paused (park at the next pause
	// point; a task created Paused stays Pending) or Stopped (cancel the run; terminal until set
	// Running again, which starts a new attempt).
	// +optional
	// +kubebuilder:default=Running
	State DesiredState `json:"state,omitempty"`

	// restartGeneration restarts the task from scratch each time it is increased: the current
	// run, if any, is stopped and a new attempt starts without its checkpoint, as spec.state
	// says: with Running it runs, with Paused it waits as Pending, and with Stopped nothing runs
	// (the bump is recorded; setting Running then starts the new attempt). It may only grow.
	// Finished and Failed tasks stay as they are until it is bumped, so re-applying the same
	// manifest never reruns work.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="restartGeneration may only grow: increase it to restart the task"
	RestartGeneration int64 `json:"restartGeneration,omitempty"`

	// maxRetries is how many times a failed attempt is retried, with exponential backoff
	// (1s, 2s, 4s, ... capped at 5m). 0 (default) means a failure is final.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxRetries int32 `json:"maxRetries,omitempty"`

	// timeout bounds the running time of one attempt (time parked while Paused does not count),
	// for example `30s` or `1h`. An attempt that runs longer fails with reason DeadlineExceeded
	// and is retried if maxRetries allows. Unset means no limit.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="timeout must be at least 1s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// backoff sets the wait before each retry: initial, doubled after every retry, at most max,
	// spread by ±jitterPercent (the same for a given task and attempt, so every operator
	// computes the same time). Default: 1s, 5m, no jitter. The next retry's time is in
	// status.nextRetryTime and in the row's retry_at.
	// +optional
	Backoff *Backoff `json:"backoff,omitempty"`

	// stallTimeout reports a running task that has shown no sign of life (a pause point,
	// progress, a checkpoint or a heartbeat) for this long: condition Stalled, a Warning Event
	// and a Stalled transition in its history. It does not stop the task (timeout does).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="stallTimeout must be at least 1s"
	StallTimeout *metav1.Duration `json:"stallTimeout,omitempty"`

	// pauseTimeout stops a task that stays Paused longer than this (reason PauseTimeout), so
	// forgotten paused work does not hold memory forever. Unset: no limit.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="pauseTimeout must be at least 1s"
	PauseTimeout *metav1.Duration `json:"pauseTimeout,omitempty"`

	// startAfter delays the task's start: it waits Pending (condition Ready False, reason
	// Scheduled) until this time, then starts as spec.state says. Only a new attempt waits: a
	// run that already started is never held back, and neither is a restart or retry after
	// this time. Changing it before the start postpones or advances the start.
	// +optional
	StartAfter *metav1.Time `json:"startAfter,omitempty"`

	// resumeAt resumes a Paused task by itself at this time: from then on the task runs as if
	// spec.state were Running, although spec.state still says Paused (the controller never
	// writes spec; status.conditions Ready says "resumed by spec.resumeAt"). It has no effect
	// with state Running or Stopped. To pause again after it passed, set a later resumeAt or
	// remove it; under GitOps, change state to Running and drop resumeAt in the same commit once
	// the time has passed, so the manifest says what runs. A task created Paused with a
	// resumeAt starts at that time. spec.pauseTimeout still applies before it.
	// +optional
	ResumeAt *metav1.Time `json:"resumeAt,omitempty"`

	// queue names the TaskQueue, in this namespace, the task starts through: the queue bounds
	// how many of its tasks run at once across every replica, how fast they start and in which
	// order (spec.priority, fairness between tenants), and can be paused. A task waits Pending
	// (condition Ready False, reason QueueWaiting) until its queue admits it; a run that was
	// admitted keeps its place until it ends or pauses. Empty: the task starts as soon as it can.
	// A queue that does not exist holds its tasks back until it is created.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Queue string `json:"queue,omitempty"`

	// priority orders the tasks waiting in the same queue: higher starts first, first come first
	// served within a priority. A waiting task gains one priority for every priorityAging of its
	// queue (default 1m) it has waited, so a low priority waits longer but never for ever.
	// Without spec.queue it has no effect.
	// +optional
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	Priority int32 `json:"priority,omitempty"`

	// items makes the task many units of work: a row per item in PostgreSQL, each with its own
	// state, executions, retries and history, run by a task type registered with
	// runner.RegisterItems. The task finishes when every item succeeded and fails when any failed
	// for good; pause, resume, stop and restart act on all its items, and the API server sees a
	// handful of writes for the whole object.
	// +optional
	Items *ItemsSpec `json:"items,omitempty"`

	// ttlSecondsAfterFinished deletes the BackgroundTask this many seconds after it reached a
	// terminal phase (Finished, Failed or Stopped), like a Job's, once its last transition is
	// committed to PostgreSQL; the history stays in the database. Leave it unset for objects a
	// GitOps tool manages (it would create them again).
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// ttlSecondsAfterOutcome overrides ttlSecondsAfterFinished for one outcome, for example to
	// keep failed tasks longer than finished ones.
	// +optional
	TTLSecondsAfterOutcome *OutcomeTTL `json:"ttlSecondsAfterOutcome,omitempty"`
}

// MaxItems bounds spec.items.count, and MaxListItems spec.items.list.
const (
	MaxItems     = 1_000_000
	MaxListItems = 1000
)

// ItemsSpec declares a task's items: a count (items 0..count-1, like an Indexed Job) or a short
// inline list (one item per element, its value).
// +kubebuilder:validation:XValidation:rule="has(self.count) != has(self.list)",message="items needs exactly one of count and list"
type ItemsSpec struct {
	// count is how many items the task has; the task type gets each one's index.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Count *int32 `json:"count,omitempty"`

	// list holds the items' values, one item per element, each a JSON object whose fields the
	// task type defines (at most 1000: use count for more).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +listType=atomic
	List []ItemValue `json:"list,omitempty"`

	// parallelism is how many items run at once (on the replica that runs the task). It may
	// change at any time and applies from the task's next run: a restart, a retry, a stop and
	// start, a move to another replica (not a resume after a pause in the same process).
	// +optional
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Parallelism int32 `json:"parallelism,omitempty"`

	// maxRetries is how often a failed item is executed again, at once, before it fails for
	// good; spec.maxRetries then retries the whole task, which runs its failed items only.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxRetries int32 `json:"maxRetries,omitempty"`

	// retryFailedGeneration makes the restart to this spec.restartGeneration run only the items
	// that did not succeed; any other restart runs every item again. Set it with
	// restartGeneration (`kubectl taskpilot retry-failed` does both).
	// +optional
	// +kubebuilder:validation:Minimum=0
	RetryFailedGeneration int64 `json:"retryFailedGeneration,omitempty"`
}

// ItemValue is one item's value: a JSON object, its fields the task type's to define.
// +kubebuilder:validation:XPreserveUnknownFields
// +kubebuilder:validation:Type=object
type ItemValue struct {
	Raw []byte `json:"-"`
}

// MarshalJSON writes the value as it is (null when empty).
func (v ItemValue) MarshalJSON() ([]byte, error) {
	if len(v.Raw) == 0 {
		return []byte("null"), nil
	}
	return v.Raw, nil
}

// UnmarshalJSON keeps the value as it is.
func (v *ItemValue) UnmarshalJSON(b []byte) error {
	v.Raw = append(v.Raw[:0], b...)
	return nil
}

// ItemsStatus counts a task's items by state.
type ItemsStatus struct {
	// total is the number of items.
	Total int64 `json:"total"`
	// pending, running, succeeded and failed count the items in each state (failed: for good,
	// their retries spent).
	Pending   int64 `json:"pending"`
	Running   int64 `json:"running"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	// firstFailures are up to five failed items, lowest index first, with their last error.
	// +optional
	// +kubebuilder:validation:MaxItems=5
	// +listType=atomic
	FirstFailures []ItemFailure `json:"firstFailures,omitempty"`
}

// ItemFailure is one item that failed for good.
type ItemFailure struct {
	// index is the item's index.
	Index int64 `json:"index"`
	// error is its last error, cut to 256 characters.
	// +kubebuilder:validation:MaxLength=256
	Error string `json:"error"`
}

// Backoff is the wait before retries.
// +kubebuilder:validation:XValidation:rule="!has(self.initial) || !has(self.max) || duration(self.initial) <= duration(self.max)",message="backoff.initial must not be more than backoff.max"
type Backoff struct {
	// initial is the wait before the first retry (default 1s).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms')",message="backoff.initial must be at least 100ms"
	Initial *metav1.Duration `json:"initial,omitempty"`
	// max caps the wait (default 5m).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="backoff.max must be at most 24h"
	Max *metav1.Duration `json:"max,omitempty"`
	// jitterPercent spreads each wait by up to ± this share (0 to 100, default 0), so that
	// tasks that failed together do not retry together.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	JitterPercent int32 `json:"jitterPercent,omitempty"`
}

// OutcomeTTL sets the time to live per terminal phase, in seconds.
type OutcomeTTL struct {
	// finished applies to Finished tasks.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Finished *int32 `json:"finished,omitempty"`
	// failed applies to Failed tasks.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Failed *int32 `json:"failed,omitempty"`
	// stopped applies to Stopped tasks.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Stopped *int32 `json:"stopped,omitempty"`
}

// BackgroundTaskStatus is the observed state of a BackgroundTask, written only by the
// controller through the status subresource. The full transition history lives in PostgreSQL
// (table background_task_transitions).
type BackgroundTaskStatus struct {
	// phase is where the task is in its lifecycle: Pending, Running, Paused, Finished, Failed
	// or Stopped.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// conditions explain the phase: Ready (observed matches desired), Progressing, Degraded
	// and Recorded (every transition is written to PostgreSQL).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the metadata.generation of the spec this status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// observedRestartGeneration is the spec.restartGeneration the current attempt was started
	// for. While it is lower than spec.restartGeneration a restart is in progress.
	// +optional
	ObservedRestartGeneration int64 `json:"observedRestartGeneration,omitempty"`

	// attempt counts the runs started for this task, including retries and restarts (1 for the
	// first run; 0 while it has never started).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempt int32 `json:"attempt,omitempty"`

	// startTime is when the current attempt started running for the first time.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// endTime is when the task reached a terminal phase (Finished, Failed, Stopped). It is
	// cleared when a new attempt starts.
	// +optional
	EndTime *metav1.Time `json:"endTime,omitempty"`

	// lastRunTime is the last time the task (re)entered Running, including resumes.
	// +optional
	LastRunTime *metav1.Time `json:"lastRunTime,omitempty"`

	// nextRetryTime is when the scheduled retry starts (while Pending after a failure).
	// +optional
	NextRetryTime *metav1.Time `json:"nextRetryTime,omitempty"`

	// progress is the task's own short progress text, such as `42%` or `420/1000`.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Progress string `json:"progress,omitempty"`

	// result is the JSON value Run returned when the task finished. Results larger than 4 KiB
	// are kept only in PostgreSQL (background_tasks.result); here they are replaced by
	// `{"truncated": true, "bytes": N}`.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Result *runtime.RawExtension `json:"result,omitempty"`

	// scheduledTime is when the task starts (spec.startAfter) or resumes (spec.resumeAt) by
	// itself, while it waits for that time; empty otherwise.
	// +optional
	ScheduledTime *metav1.Time `json:"scheduledTime,omitempty"`

	// message is a human-readable explanation of the current phase, such as the error of a
	// failed attempt or why the task is waiting.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// items counts the task's items by state (spec.items), as its last run reported them or
	// PostgreSQL holds them.
	// +optional
	Items *ItemsStatus `json:"items,omitempty"`
}

// BackgroundTask runs a registered task type inside the taskpilot operator's pod and gives it a
// lifecycle you control with spec.state: Running, Paused, Stopped. Bump spec.restartGeneration
// to restart it from scratch. Every transition is also recorded in PostgreSQL.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bgt,categories=taskpilot
// +kubebuilder:validation:XValidation:rule="self.spec.taskName == oldSelf.spec.taskName",message="taskName is immutable: create a new BackgroundTask to run another task type"
// +kubebuilder:validation:XValidation:rule="has(self.spec.items) == has(oldSelf.spec.items)",message="spec.items can be neither added nor removed: create a new BackgroundTask"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.items) || !has(oldSelf.spec.items) || ((has(self.spec.items.count) ? self.spec.items.count : 0) == (has(oldSelf.spec.items.count) ? oldSelf.spec.items.count : 0) && (has(self.spec.items.list) ? self.spec.items.list : []) == (has(oldSelf.spec.items.list) ? oldSelf.spec.items.list : []))",message="items.count and items.list are immutable: create a new BackgroundTask for other items"
// +kubebuilder:printcolumn:name="Task",type=string,JSONPath=`.spec.taskName`
// +kubebuilder:printcolumn:name="Desired",type=string,JSONPath=`.spec.state`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Attempt",type=integer,JSONPath=`.status.attempt`
// +kubebuilder:printcolumn:name="Stalled",type=string,JSONPath=`.status.conditions[?(@.type=="Stalled")].status`
// +kubebuilder:printcolumn:name="Scheduled",type=string,JSONPath=`.status.scheduledTime`,description="When the task starts (spec.startAfter) or resumes (spec.resumeAt) by itself"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Replica",type=string,JSONPath=`.metadata.labels.tasks\.taskpilot\.dev/shard`,priority=1,description="The replica that runs the task (--sharding)"
type BackgroundTask struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what you want: which task type to run, its params and its lifecycle state.
	// +required
	Spec BackgroundTaskSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status BackgroundTaskStatus `json:"status,omitempty"`
}

// BackgroundTaskList is a list of BackgroundTasks.
//
// +kubebuilder:object:root=true
type BackgroundTaskList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the BackgroundTasks.
	Items []BackgroundTask `json:"items"`
}
