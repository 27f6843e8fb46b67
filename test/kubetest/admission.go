package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Policy is a ValidatingAdmissionPolicy of config/admission and its binding, as shipped (file
// is the file name there).
func Policy(file string) (*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding, error) {
	raw, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "admission", file))
	if err != nil {
		return nil, nil, fmt.Errorf("read the policy %s: %w", file, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var policy admissionv1.ValidatingAdmissionPolicy
	var binding admissionv1.ValidatingAdmissionPolicyBinding
	if err := dec.Decode(&policy); err != nil {
		return nil, nil, fmt.Errorf("decode the task-type policy: %w", err)
	}
	if err := dec.Decode(&binding); err != nil {
		return nil, nil, fmt.Errorf("decode the task-type policy binding: %w", err)
	}
	return &policy, &binding, nil
}

// InstallTaskTypePolicy creates (or replaces) config/admission's task-type policy with its
// binding reading the task-type catalog of catalogNamespace, where the operator under test runs.
// A non-empty suffix names a copy of both (tests that share a control plane), and
// namespaceLabels, when set, bind it to the namespaces with these labels only.
func InstallTaskTypePolicy(ctx context.Context, c client.Client, catalogNamespace, suffix string, namespaceLabels map[string]string) error {
	return InstallPolicy(ctx, c, "task_types_policy.yaml", catalogNamespace, suffix, namespaceLabels)
}

// InstallPolicy creates (or replaces) the policy of config/admission's file with its binding;
// paramNamespace, when set, is the namespace of the binding's parameter. suffix and
// namespaceLabels are as for InstallTaskTypePolicy.
func InstallPolicy(ctx context.Context, c client.Client, file, paramNamespace, suffix string, namespaceLabels map[string]string) error {
	policy, binding, err := Policy(file)
	if err != nil {
		return err
	}
	policy.Name += suffix
	binding.Name, binding.Spec.PolicyName = binding.Name+suffix, policy.Name
	if paramNamespace != "" {
		binding.Spec.ParamRef.Namespace = paramNamespace
	}
	if namespaceLabels != nil {
		binding.Spec.MatchResources = &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: namespaceLabels}}
	}
	for _, obj := range []client.Object{policy, binding} {
		existing := obj.DeepCopyObject().(client.Object)
		switch err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing); {
		case apierrors.IsNotFound(err):
			err = c.Create(ctx, obj)
			if err != nil {
				return fmt.Errorf("create %s: %w", obj.GetName(), err)
			}
		case err != nil:
			return fmt.Errorf("read %s: %w", obj.GetName(), err)
		default:
			obj.SetResourceVersion(existing.GetResourceVersion())
			if err := c.Update(ctx, obj); err != nil {
				return fmt.Errorf("update %s: %w", obj.GetName(), err)
			}
		}
	}
	return nil
}
