package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/kube"
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
	c, err := o.client()
	if err != nil {
		return err
	}
	tasks, err := getTasks(ctx, c, sc)
	if err != nil {
		return err
	}
	if format := *printFlags.OutputFormat; format != "" && format != "wide" {
		return printObjects(o.streams.Out, printFlags, tasks)
	}
	if len(tasks) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "No tasks found.")
		return nil
	}
	last := lastTransitions(ctx, o, tasks)
	return printTaskTable(o.streams.Out, tasks, last, sc.withNamespace(), time.Now())
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

// lastTransitions reads the tasks' last transitions; without a database, or when it fails,
// the column stays empty and stderr says why: the cluster's view is still worth printing.
func lastTransitions(ctx context.Context, o *options, tasks []v1alpha1.BackgroundTask) map[string]taskdb.Transition {
	if o.databaseURL == "" {
		fmt.Fprintln(o.streams.ErrOut, "note: no DATABASE_URL (or --database-url): LAST TRANSITION left empty")
		return nil
	}
	db, err := taskdb.Open(ctx, o.databaseURL)
	if err != nil {
		fmt.Fprintf(o.streams.ErrOut, "note: LAST TRANSITION left empty: %v\n", err)
		return nil
	}
	defer db.Close()
	uids := make([]string, 0, len(tasks))
	for _, t := range tasks {
		uids = append(uids, string(t.UID))
	}
	last, err := db.LastTransitions(ctx, uids)
	if err != nil {
		fmt.Fprintf(o.streams.ErrOut, "note: LAST TRANSITION left empty: %v\n", err)
		return nil
	}
	return last
}

// printTaskTable prints kubectl get bgt's columns and LAST TRANSITION.
func printTaskTable(w io.Writer, tasks []v1alpha1.BackgroundTask, last map[string]taskdb.Transition, withNamespace bool, now time.Time) error {
	tw := printers.GetNewTabWriter(w)
	header := "NAME\tTASK\tDESIRED\tPHASE\tPROGRESS\tATTEMPT\tSTALLED\tAGE\tLAST TRANSITION"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, t := range tasks {
		row := []string{t.Name, t.Spec.TaskName, string(t.Spec.State), string(t.Status.Phase), t.Status.Progress,
			strconv.Itoa(int(t.Status.Attempt)), stalled(t), age(t.CreationTimestamp, now), transitionText(last[string(t.UID)], now)}
		if withNamespace {
			row = append([]string{t.Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// stalled is the Stalled condition's status, as kubectl get bgt shows it ("" when not watched).
func stalled(t v1alpha1.BackgroundTask) string {
	if c := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		return string(c.Status)
	}
	return ""
}

// age is kubectl's AGE format.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
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
