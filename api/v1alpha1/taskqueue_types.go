package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// QueueDrain says what a pause of a queue does to its running tasks.
// +kubebuilder:validation:Enum=None;Pause
type QueueDrain string

const (
	// DrainNone lets the running tasks go on: a paused queue only starts nothing new.
	DrainNone QueueDrain = "None"
	// DrainPause parks the running tasks at their next pause point as well; they resume, in
	// their turn, once the queue resumes (their spec.state still says Running).
	DrainPause QueueDrain = "Pause"
)

// QueueRateLimit bounds how fast a queue starts tasks: a token bucket refilled with `starts`
// tokens every `period`, holding at most `burst`; every start takes one.
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || self.burst >= 1",message="burst must be at least 1"
type QueueRateLimit struct {
	// starts is how many tasks may start per period.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Starts int32 `json:"starts"`
	// period is the time `starts` are spread over (default 1s).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="period must be at least 1ms"
	Period *metav1.Duration `json:"period,omitempty"`
	// burst is how many starts may happen at once after the queue was idle (default: starts).
	// +optional
	// +kubebuilder:validation:Maximum=100000
	Burst *int32 `json:"burst,omitempty"`
}

// QueueFairness shares a queue between tenants: waiting tasks are grouped by the value of a
// label, and the groups take turns for the queue's free places (round-robin, or in proportion to
// their weights), so a tenant with 10,000 waiting tasks does not hold back one with 10.
type QueueFairness struct {
	// key is the label whose value names a task's tenant, for example `tenant`. Tasks without
	// the label form one group of their own.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	Key string `json:"key"`
	// weights gives some tenants (label values) a larger share: a tenant of weight 3 gets three
	// places for every one of a tenant of weight 1 (the default).
	// +optional
	// +kubebuilder:validation:MaxProperties=1000
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k] >= 1 && self[k] <= 1000)",message="every weight is between 1 and 1000"
	Weights map[string]int32 `json:"weights,omitempty"`
}

// TaskQueueSpec is what a queue allows.
// +kubebuilder:validation:XValidation:rule="!has(self.pausedUntil) || (has(self.paused) && self.paused)",message="pausedUntil needs paused: true (the queue resumes by itself at that time)"
type TaskQueueSpec struct {
	// concurrency is the most tasks of this queue running at once across every replica of the
	// operator (PostgreSQL enforces it: a limit of 5 is 5 with any number of sharded replicas).
	// A task holds its place from its start until it pauses or ends.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Concurrency int32 `json:"concurrency"`

	// rateLimit bounds how fast the queue starts tasks (unset: as fast as places free up).
	// +optional
	RateLimit *QueueRateLimit `json:"rateLimit,omitempty"`

	// fairness shares the queue between tenants named by a label (unset: one line for all).
	// +optional
	Fairness *QueueFairness `json:"fairness,omitempty"`

	// priorityAging is how long a waiting task waits for each priority it gains (default 1m):
	// a task of priority 0 that waited 10m starts before a new task of priority 9.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="priorityAging must be at least 1s"
	PriorityAging *metav1.Duration `json:"priorityAging,omitempty"`

	// paused starts no task of the queue (running tasks go on, unless drain is Pause); the
	// waiting ones keep their place.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// pausedUntil resumes a paused queue by itself at this time (for example the end of a
	// maintenance window); paused stays true in the spec, the status says it resumed.
	// +optional
	PausedUntil *metav1.Time `json:"pausedUntil,omitempty"`

	// drain is what pausing does to the running tasks: None (default) lets them go on, Pause
	// parks them at their next pause point until the queue resumes.
	// +optional
	// +kubebuilder:default=None
	Drain QueueDrain `json:"drain,omitempty"`
}

// TaskQueueStatus is what the queue holds, read from PostgreSQL (the truth across replicas)
// every few seconds by the elected operator.
type TaskQueueStatus struct {
	// running counts the tasks holding a place: running, or admitted and starting.
	// +optional
	Running int32 `json:"running"`
	// pending counts the tasks waiting for a place.
	// +optional
	Pending int32 `json:"pending"`
	// paused counts the queue's tasks that are Paused (they wait for a place again to resume).
	// +optional
	Paused int32 `json:"paused"`
	// admittedLastMinute counts the tasks the queue started in the last minute.
	// +optional
	AdmittedLastMinute int32 `json:"admittedLastMinute"`
	// oldestPendingSince is when the longest-waiting task began to wait (empty: none waits).
	// +optional
	OldestPendingSince *metav1.Time `json:"oldestPendingSince,omitempty"`
	// conditions: Ready (the queue is recorded in PostgreSQL and admits tasks) and Paused.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation this status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// TaskQueue bounds, orders and shares the starts of the BackgroundTasks that name it
// (spec.queue): a concurrency that holds across every replica, a rate limit, priorities with
// aging, fairness between tenants, and a pause. PostgreSQL decides every admission.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tq,categories=taskpilot
// +kubebuilder:printcolumn:name="Concurrency",type=integer,JSONPath=`.spec.concurrency`
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.running`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pending`
// +kubebuilder:printcolumn:name="Paused",type=string,JSONPath=`.status.conditions[?(@.type=="Paused")].status`
// +kubebuilder:printcolumn:name="Oldest",type=date,JSONPath=`.status.oldestPendingSince`,description="When the longest-waiting task began to wait"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TaskQueue struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what the queue allows.
	// +required
	Spec TaskQueueSpec `json:"spec"`

	// status is what the queue holds.
	// +optional
	Status TaskQueueStatus `json:"status,omitempty"`
}

// TaskQueueList is a list of TaskQueues.
//
// +kubebuilder:object:root=true
type TaskQueueList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the TaskQueues.
	Items []TaskQueue `json:"items"`
}

// Condition types and reasons of a TaskQueue.
const (
	ConditionPaused = "Paused"
	// ReasonQueueWaiting is a BackgroundTask's Ready reason while it waits for its queue.
	ReasonQueueWaiting = "QueueWaiting"
)

// PausedAt reports whether the queue starts nothing at now: paused, and pausedUntil (if set)
// not reached.
func (s *TaskQueueSpec) PausedAt(now time.Time) bool {
	return s.Paused && (s.PausedUntil == nil || now.Before(s.PausedUntil.Time))
}
