package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/plugin/kube"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

func newGetCommand(o *options) *cobra.Command {
	var sc scope
	printFlags := genericclioptions.NewPrintFlags("")
	cmd := &cobra.Command{
		Use:   "get [NAME...] [-l SELECTOR] [-n NAMESPACE | -A]",
		Short: "List tasks like `kubectl get bgt`, plus each one's last recorded transition",
		Long: "List tasks with the columns of `kubectl get bgt` and, from PostgreSQL, the last transition\n" +
			"recorded for each (left empty without DATABASE_URL). -o json|yaml prints the objects.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sc.resolve(o, args, false); err != nil {
				return err
			}
			return runGet(cmd.Context(), o, &sc, printFlags)
		},
	}
	sc.addFlags(cmd, false)
	printFlags.AddFlags(cmd)
	return cmd
}

func runGet(ctx context.Context, o *options, sc *scope, printFlags *genericclioptions.PrintFlags) error {
	format := *printFlags.OutputFormat
	if format != "" && format != "wide" {
		c, err := o.client()
		if err != nil {
			return err
		}
		tasks, err := getTasks(ctx, c, sc)
		if err != nil {
			return err
		}
		return printObjects(o.streams.Out, printFlags, tasks)
	}
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	table, err := getTable(ctx, cfg, sc)
	if err != nil {
		return err
	}
	if len(table.Rows) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "No tasks found.")
		return nil
	}
	if err := withLastTransition(table, lastTransitions(ctx, o, uidsOf(table)), time.Now()); err != nil {
		return err
	}
	return printTable(o.streams.Out, table, format == "wide", sc.withNamespace())
}

// uidsOf reads the UIDs of the table's rows (their metadata).
func uidsOf(t *metav1.Table) []string {
	var out []string
	for _, r := range t.Rows {
		var m metav1.PartialObjectMetadata
		if json.Unmarshal(r.Object.Raw, &m) == nil && m.UID != "" {
			out = append(out, string(m.UID))
		}
	}
	return out
}

// lastTransitions reads the tasks' last transitions; without a database, or when it fails,
// the column stays empty and stderr says why: the cluster's view is still worth printing.
func lastTransitions(ctx context.Context, o *options, uids []string) map[string]taskdb.Transition {
	if o.database() == "" {
		fmt.Fprintln(o.streams.ErrOut, "note: no DATABASE_URL (or --database-url): LAST TRANSITION left empty")
		return nil
	}
	db, err := taskdb.Open(ctx, o.database())
	if err != nil {
		fmt.Fprintf(o.streams.ErrOut, "note: LAST TRANSITION left empty: %v\n", err)
		return nil
	}
	defer db.Close()
	last, err := db.LastTransitions(ctx, uids)
	if err != nil {
		fmt.Fprintf(o.streams.ErrOut, "note: LAST TRANSITION left empty: %v\n", err)
		return nil
	}
	return last
}

// transitionText is "RUNNING→PAUSED Paused 12s ago"; empty for no transition.
func transitionText(tr taskdb.Transition, now time.Time) string {
	if tr.Seq == 0 {
		return ""
	}
	return fmt.Sprintf("%s→%s %s %s ago", tr.From, tr.To, tr.Reason, duration.HumanDuration(now.Sub(tr.At)))
}

// printObjects prints the tasks with kubectl's printers (-o json, yaml, jsonpath, name...).
func printObjects(w io.Writer, printFlags *genericclioptions.PrintFlags, tasks []v1alpha1.BackgroundTask) error {
	scheme, err := kube.NewScheme()
	if err != nil {
		return err
	}
	p, err := printFlags.WithTypeSetter(scheme).ToPrinter()
	if err != nil {
		return fmt.Errorf("output format: %w", err)
	}
	if len(tasks) == 1 {
		return p.PrintObj(&tasks[0], w)
	}
	return p.PrintObj(&v1alpha1.BackgroundTaskList{Items: tasks}, w)
}

// getTasks reads the named tasks, or lists the scope.
func getTasks(ctx context.Context, c client.Client, sc *scope) ([]v1alpha1.BackgroundTask, error) {
	if len(sc.names) == 0 {
		return sc.list(ctx, c)
	}
	out := make([]v1alpha1.BackgroundTask, 0, len(sc.names))
	for _, n := range sc.names {
		var t v1alpha1.BackgroundTask
		if err := c.Get(ctx, client.ObjectKey{Namespace: sc.namespace, Name: n}, &t); err != nil {
			return nil, fmt.Errorf("get %s: %w", n, err)
		}
		out = append(out, t)
	}
	return out, nil
}
