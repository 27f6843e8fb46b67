package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConcurrencyPolicy says what a slot does while a run of an earlier slot is still active.
// +kubebuilder:validation:Enum=Allow;Forbid;Replace
type ConcurrencyPolicy string

const (
	// ConcurrencyAllow starts the slot's run beside the active ones.
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
	// ConcurrencyForbid skips the slot (recorded `skipped`) while a run is active.
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyReplace stops the active runs (spec.state Stopped), then starts the slot's once
	// they ended, waiting at most 30 s for a run that does not heed its stop (recorded
	// `replaced`).
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
)

// CatchUpPolicy says which slots that passed while no operator could fire them still run.
// +kubebuilder:validation:Enum=Skip;Latest;All
type CatchUpPolicy string

const (
	// CatchUpSkip runs no slot that is later than its starting deadline (default 60 s); the
	// passed ones are recorded `missed`.
	CatchUpSkip CatchUpPolicy = "Skip"
	// CatchUpLatest runs the newest passed slot (within startingDeadlineSeconds when set); the
	// older ones are recorded `missed`.
	CatchUpLatest CatchUpPolicy = "Latest"
	// CatchUpAll runs every passed slot (within startingDeadlineSeconds when set), oldest
	// first, at most maxRuns of them: the newest; the older ones are recorded `missed`.
	CatchUpAll CatchUpPolicy = "All"
)

// CatchUp is what happens to the slots that passed while no operator could fire them (all
// replicas down, the schedule's leader gone).
type CatchUp struct {
	// policy is Skip (default), Latest or All.
	// +optional
	// +kubebuilder:default=Skip
	Policy CatchUpPolicy `json:"policy,omitempty"`
	// maxRuns bounds the passed slots policy All runs (default 10).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxRuns *int32 `json:"maxRuns,omitempty"`
}

// TaskTemplate is the BackgroundTask a TaskSchedule creates for each slot.
type TaskTemplate struct {
	// metadata: labels and annotations copied to every child (besides the schedule's own
	// labels tasks.taskpilot.dev/schedule and tasks.taskpilot.dev/slot).
	// +optional
	Metadata TaskTemplateMetadata `json:"metadata,omitempty"`
	// spec is the child's spec. Its taskName cannot change once the schedule exists (the
	// rule of BackgroundTask.spec.taskName): create a new schedule for another task type.
	// +required
	Spec BackgroundTaskSpec `json:"spec"`
}

// TaskTemplateMetadata is the metadata a child takes from its template.
type TaskTemplateMetadata struct {
	// labels of the child.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations of the child.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// TaskScheduleSpec says when to create BackgroundTasks and from what.
type TaskScheduleSpec struct {
	// schedule is a cron expression: five fields (minute hour day-of-month month
	// day-of-week), or six with seconds first, or a descriptor such as `@daily` or
	// `@every 1h`. Slots are computed in timeZone. Editing schedule or timeZone starts the new
	// expression's slots at the edit: slots before it are neither caught up nor recorded.
	// An expression that names no time in the next five years (30 February) sets Ready False,
	// reason NoFutureSlot.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Schedule string `json:"schedule"`

	// timeZone is the IANA time zone the schedule is read in, for example `Europe/Berlin`
	// (default UTC). On the day clocks spring forward, a slot in the skipped hour runs once, at
	// the first instant after the gap (02:30 runs at 03:00); on the day they fall back, a slot
	// in the repeated hour runs once, at its first occurrence.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`

	// template is the BackgroundTask created for each slot, named `<schedule>-<slot in Unix
	// seconds>`, so a slot can never create two.
	// +required
	Template TaskTemplate `json:"template"`

	// concurrencyPolicy is what a slot does while a run of an earlier slot is active: Allow
	// (default), Forbid (skip the slot) or Replace (stop the active runs, then start).
	// +optional
	// +kubebuilder:default=Allow
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`

	// catchUp is what happens to slots that passed while no operator could fire them.
	// +optional
	CatchUp *CatchUp `json:"catchUp,omitempty"`

	// startingDeadlineSeconds is how late a slot may still start; a later one is recorded
	// `missed`. Default: 60 with catchUp Skip, no limit with Latest and All.
	// +optional
	// +kubebuilder:validation:Minimum=1
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// suspend stops new firings: each slot that passes while suspended is recorded `skipped`
	// (reason Suspended). Active runs go on.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// jitter delays each slot's start by a random share of this duration (the same for a given
	// schedule and slot in every operator), so that schedules sharing a slot do not all start
	// at once. Slots still fire in order: a slot whose delay is not over holds back the later
	// ones.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="jitter must be at most 1h"
	Jitter *metav1.Duration `json:"jitter,omitempty"`

	// successfulHistoryLimit is how many Finished children are kept (default 3); older ones
	// are deleted, their history stays in PostgreSQL.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SuccessfulHistoryLimit *int32 `json:"successfulHistoryLimit,omitempty"`

	// failedHistoryLimit is how many Failed or Stopped children are kept (default 1).
	// +optional
	// +kubebuilder:validation:Minimum=0
	FailedHistoryLimit *int32 `json:"failedHistoryLimit,omitempty"`
}

// TaskScheduleStatus is what the controller observed of a TaskSchedule. Every slot, fired or
// not, is recorded in PostgreSQL (table background_task_firings).
type TaskScheduleStatus struct {
	// lastScheduleTime is the newest slot that created a BackgroundTask.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// nextScheduleTime is the next slot.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// active are the children not yet Finished, Failed or Stopped.
	// +optional
	// +listType=set
	Active []string `json:"active,omitempty"`
	// activeCount is the number of active children.
	// +optional
	ActiveCount int32 `json:"activeCount,omitempty"`
	// observedGeneration is the metadata.generation this status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready (the schedule parses and fires), with reason Scheduling or
	// Suspended (True), InvalidSchedule (the expression or time zone does not parse),
	// NoFutureSlot (the expression names no time in the next five years) or TemplateRefused
	// (the API server refuses the template's BackgroundTask; slots are recorded missed) (False).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TaskSchedule creates a BackgroundTask from its template at every slot of a cron schedule, in
// a time zone, exactly once per slot whatever happens to the operators; every slot's outcome
// (created, skipped, missed, replaced) is recorded in PostgreSQL.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bts,categories=taskpilot
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 52",message="a TaskSchedule name is at most 52 characters (its children add the slot)"
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="TimeZone",type=string,JSONPath=`.spec.timeZone`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Last",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.activeCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TaskSchedule struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says when and what.
	// +required
	Spec TaskScheduleSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status TaskScheduleStatus `json:"status,omitempty"`
}

// TaskScheduleList is a list of TaskSchedules.
//
// +kubebuilder:object:root=true
type TaskScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the TaskSchedules.
	Items []TaskSchedule `json:"items"`
}

// Labels and annotations the schedule controller sets on the BackgroundTasks it creates.
const (
	// LabelSchedule names the TaskSchedule that created the task.
	LabelSchedule = "tasks.taskpilot.dev/schedule"
	// LabelSlot is the slot the task was created for, in Unix seconds.
	LabelSlot = "tasks.taskpilot.dev/slot"
	// LabelManual marks a task created by a run-now request rather than by a slot.
	LabelManual = "tasks.taskpilot.dev/manual"
	// AnnotationRunNow on a TaskSchedule asks for one run now: its value is the request's time
	// (RFC 3339, with fractional seconds); each request time creates one child, named
	// <schedule>-manual-<Unix milliseconds>, recorded as a manual firing, and the operator then
	// removes the annotation. `kubectl taskpilot run-now NAME` sets it.
	AnnotationRunNow = "tasks.taskpilot.dev/run-now"
)
