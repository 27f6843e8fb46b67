package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
)

// scope is which tasks a command is about: NAME... in one namespace, or a label selector or
// --all, in one namespace or all of them.
type scope struct {
	selector      string
	all           bool
	allNamespaces bool

	// Resolved by resolve.
	names     []string
	namespace string // "" with -A
	sel       labels.Selector
}

func (s *scope) addFlags(cmd *cobra.Command, allowAll bool) {
	cmd.Flags().StringVarP(&s.selector, "selector", "l", "", "Label selector (e.g. batch=nightly,tier!=gold); only tasks matching it")
	cmd.Flags().BoolVarP(&s.allNamespaces, "all-namespaces", "A", false, "Tasks in every namespace")
	if allowAll {
		cmd.Flags().BoolVar(&s.all, "all", false, "Every task in the namespace (or in every namespace with -A)")
	}
}

// resolve checks the combination of names and flags. requireTarget: a verb must be told
// which tasks (names, -l or --all); get lists everything by default.
func (s *scope) resolve(o *options, names []string, requireTarget bool) error {
	sel, err := labels.Parse(s.selector)
	if err != nil {
		return fmt.Errorf("-l %q: %w", s.selector, err)
	}
	s.sel, s.names = sel, names
	switch {
	case len(names) > 0 && (s.selector != "" || s.all):
		return errors.New("name tasks, or use -l or --all, not both")
	case len(names) > 0 && s.allNamespaces:
		return errors.New("a task name needs one namespace: use -n instead of -A")
	case requireTarget && len(names) == 0 && s.selector == "" && !s.all:
		return errors.New("which tasks? name them, or use -l SELECTOR or --all")
	}
	if !s.allNamespaces {
		if s.namespace, err = o.namespace(); err != nil {
			return err
		}
	}
	return nil
}

// withNamespace: output needs a NAMESPACE column.
func (s *scope) withNamespace() bool { return s.allNamespaces }

// targets are the tasks in scope: named ones unread (the verb reads each), listed ones as
// listed. Missing named tasks fail on their own later, like kubectl's "not found" per name.
func (s *scope) targets(ctx context.Context, c client.Client) ([]bulk.Target, error) {
	if len(s.names) > 0 {
		out := make([]bulk.Target, 0, len(s.names))
		for _, n := range s.names {
			out = append(out, bulk.Target{Key: types.NamespacedName{Namespace: s.namespace, Name: n}})
		}
		return out, nil
	}
	items, err := s.list(ctx, c)
	if err != nil {
		return nil, err
	}
	out := make([]bulk.Target, 0, len(items))
	for i := range items {
		out = append(out, bulk.Target{Key: client.ObjectKeyFromObject(&items[i]), Obj: &items[i]})
	}
	return out, nil
}

// list lists the tasks of the namespace scope that match the selector.
func (s *scope) list(ctx context.Context, c client.Client) ([]v1alpha1.BackgroundTask, error) {
	var l v1alpha1.BackgroundTaskList
	opts := []client.ListOption{client.MatchingLabelsSelector{Selector: s.sel}}
	if s.namespace != "" {
		opts = append(opts, client.InNamespace(s.namespace))
	}
	if err := c.List(ctx, &l, opts...); err != nil {
		return nil, fmt.Errorf("list BackgroundTasks: %w", err)
	}
	return l.Items, nil
}
