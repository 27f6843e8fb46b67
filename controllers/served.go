package controllers

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/controllers/tasktype"
)

// servedElsewhere reports whether another operator deployment of the cluster publishes the
// task type (its TaskType lists it), which this one does not serve: then the task is that
// deployment's, and this one leaves it alone. A type nobody publishes is this deployment's to
// record as Failed, reason UnknownTaskType; so is a type whose deployments stopped publishing
// it (StaleServer).
func (r *reconciler) servedElsewhere(ctx context.Context, taskName string) (bool, error) {
	var tt v1alpha1.TaskType
	switch err := r.client.Get(ctx, types.NamespacedName{Name: taskName}, &tt); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read TaskType %s: %w", taskName, err)
	}
	now := r.clock.Now()
	return slices.ContainsFunc(tt.Status.ServedBy, func(s v1alpha1.TaskTypeServer) bool {
		return (s.Namespace != r.opts.Namespace || s.Deployment != r.opts.deployment()) && !tasktype.StaleServer(s, now)
	}), nil
}
