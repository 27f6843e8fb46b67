package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Condition types of a TaskType.
const (
	// ConditionServed is True while at least one operator deployment serves the type.
	ConditionServed = "Served"
	// ConditionConflict is True when more than one operator deployment serves the type: each
	// may run its tasks (a task runs in one of them at a time), which is rarely what was meant.
	ConditionConflict = "Conflict"
)

// TaskTypeStatus is what the operator deployments that serve a task type publish about it.
type TaskTypeStatus struct {
	// servedBy lists the operator deployments that run tasks of this type, one entry each,
	// written by that deployment's elected leader.
	// +optional
	// +listType=map
	// +listMapKey=namespace
	// +listMapKey=deployment
	ServedBy []TaskTypeServer `json:"servedBy,omitempty"`

	// conditions: Served and Conflict.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TaskTypeServer is one operator deployment serving a task type, and what it says of it.
type TaskTypeServer struct {
	// namespace is where the deployment runs (its leader Lease's namespace).
	// +required
	Namespace string `json:"namespace"`
	// deployment is the deployment's name (its --deployment flag).
	// +required
	Deployment string `json:"deployment"`
	// description is the task type's one-line description.
	// +optional
	Description string `json:"description,omitempty"`
	// paramsSchema is the JSON Schema of spec.params for this type.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	ParamsSchema *runtime.RawExtension `json:"paramsSchema,omitempty"`
	// example is an example of spec.params (from the schema's examples and defaults).
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Example *runtime.RawExtension `json:"example,omitempty"`
	// publishedAt is when the deployment last published this entry; its leader renews it every
	// 10 minutes, and an entry not renewed for 30 minutes is of a deployment that is gone (its
	// type counts as served by nobody).
	// +optional
	PublishedAt *metav1.Time `json:"publishedAt,omitempty"`
}

// TaskType is a task type that taskpilot operator deployments in this cluster can run: the
// values spec.taskName of a BackgroundTask may take. The operators publish them (cluster-scoped,
// named after the type); `kubectl get tasktypes` lists them and `kubectl taskpilot types NAME`
// shows the params schema with an example. Users do not create them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=btt,categories=taskpilot
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.status.servedBy[0].description`
// +kubebuilder:printcolumn:name="Deployment",type=string,JSONPath=`.status.servedBy[0].deployment`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.servedBy[0].namespace`
// +kubebuilder:printcolumn:name="Conflict",type=string,JSONPath=`.status.conditions[?(@.type=="Conflict")].status`
// +kubebuilder:printcolumn:name="Published",type=date,JSONPath=`.status.servedBy[0].publishedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TaskType struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata; the name is the task type's.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is what the serving deployments published.
	// +optional
	Status TaskTypeStatus `json:"status,omitempty"`
}

// TaskTypeList is a list of TaskTypes.
//
// +kubebuilder:object:root=true
type TaskTypeList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the TaskTypes.
	Items []TaskType `json:"items"`
}
