// Package v1alpha1 contains the BackgroundTask API of taskpilot.
//
// A BackgroundTask declares which registered task type to run, its parameters, and the
// lifecycle state the user wants (Running, Paused, Stopped). The controller drives an in-pod
// goroutine runner toward that state and mirrors what actually happens into status.
//
// +kubebuilder:object:generate=true
// +groupName=tasks.taskpilot.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// Group is the API group of taskpilot's resources.
	Group = "tasks.taskpilot.dev"
	// Version is the API version of this package.
	Version = "v1alpha1"
)

// GroupVersion returns the group and version of this API.
//
// It is a function rather than the usual package-level variable (and AddToScheme below is a
// plain function rather than a SchemeBuilder) because taskpilot keeps no package-level mutable
// state: nothing here can be changed behind a caller's back.
func GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: Group, Version: Version}
}

// AddToScheme registers the API's kinds (BackgroundTask, TaskType, TaskSchedule, TaskQueue and
// their lists) with s.
func AddToScheme(s *runtime.Scheme) error {
	gv := GroupVersion()
	s.AddKnownTypes(gv, &BackgroundTask{}, &BackgroundTaskList{}, &TaskType{}, &TaskTypeList{},
		&TaskSchedule{}, &TaskScheduleList{}, &TaskQueue{}, &TaskQueueList{})
	metav1.AddToGroupVersion(s, gv)
	return nil
}
