package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

// rowFields are the background_tasks columns `history` shows above the transitions, in
// order. Showing a column a newer schema adds (reason, owner, retry_at, ...) is one line here;
// -o json|yaml already prints every column.
func rowFields() []string {
	return []string{
		"namespace",
		"name",
		"uid",
		"task_name",
		"desired_state",
		"status",
		"attempt",
		"progress",
		"message",
		"start_time",
		"end_time",
		"created_at",
		"deleted_at",
	}
}

// historyDoc is history's -o json|yaml document.
type historyDoc struct {
	Task        taskdb.Task         `json:"task"`
	Transitions []taskdb.Transition `json:"transitions"`
}

func newHistoryCommand(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history (NAME | bts/SCHEDULE) [-n NAMESPACE] [-o json|yaml]",
		Short: "Print a task's transitions, or a schedule's firings, recorded in PostgreSQL",
		Long: "Print a task's row in background_tasks and its transitions in background_task_transitions\n" +
			"(DATABASE_URL or --database-url). A task whose object was deleted is still found by name:\n" +
			"its history is kept. For bts/SCHEDULE (or a NAME that is only a TaskSchedule's), print every\n" +
			"slot of the schedule from background_task_firings: created, replaced, skipped or missed, and why.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return fmt.Errorf("-o %q: use json or yaml (or nothing for a table)", output)
			}
			return runHistory(cmd.Context(), o, args[0], output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml (default: a table)")
	return cmd
}

func runHistory(ctx context.Context, o *options, name, output string) error {
	if o.database() == "" {
		return errors.New("history comes from PostgreSQL: set DATABASE_URL or --database-url")
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	db, err := taskdb.Open(ctx, o.database())
	if err != nil {
		return err
	}
	defer db.Close()
	if schedule, ok := scheduleRef(name); ok {
		return runScheduleHistory(ctx, o, db, ns, schedule, output)
	}
	row, err := findRow(ctx, c, db, ns, name)
	if errors.Is(err, errNoTask) {
		var ts v1alpha1.TaskSchedule
		if c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ts) == nil {
			return runScheduleHistory(ctx, o, db, ns, name, output)
		}
	}
	if err != nil {
		return err
	}
	trs, err := db.History(ctx, row.Text("uid"))
	if err != nil {
		return err
	}
	doc := historyDoc{Task: row, Transitions: trs}
	switch output {
	case "json":
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintln(o.streams.Out, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(doc)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = o.streams.Out.Write(b)
		return err
	}
	return printHistory(o.streams.Out, doc)
}

// errNoTask: no BackgroundTask of that name, nor a row of one.
var errNoTask = errors.New("no BackgroundTask")

// findRow finds the task's row by the object's uid (the stable key), or, when the object is
// gone, the newest row with that namespace and name.
func findRow(ctx context.Context, c client.Client, db *taskdb.DB, ns, name string) (taskdb.Task, error) {
	var t v1alpha1.BackgroundTask
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &t)
	switch {
	case err == nil:
		row, err := db.TaskByUID(ctx, string(t.UID))
		if errors.Is(err, taskdb.ErrNotFound) {
			return nil, fmt.Errorf("%s/%s (uid %s) has no row yet: the operator records a task when it first sees it", ns, name, t.UID)
		}
		return row, err
	case apierrors.IsNotFound(err):
		row, err := db.LatestTaskByName(ctx, ns, name)
		if errors.Is(err, taskdb.ErrNotFound) {
			return nil, fmt.Errorf("%w %s/%s, and none recorded in the database", errNoTask, ns, name)
		}
		return row, err
	default:
		return nil, fmt.Errorf("get %s/%s: %w", ns, name, err)
	}
}

// printHistory prints the row's fields, then one line per transition.
func printHistory(w io.Writer, doc historyDoc) error {
	fields := printers.GetNewTabWriter(w)
	for _, f := range rowFields() {
		fmt.Fprintf(fields, "%s:\t%s\n", f, doc.Task.Text(f))
	}
	if err := fields.Flush(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	fmt.Fprintln(w)
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "SEQ\tAT\tFROM\tTO\tATTEMPT\tREASON\tMESSAGE")
	for _, tr := range doc.Transitions {
		from := tr.From
		if from == "" {
			from = "-"
		}
		fmt.Fprintln(tw, strings.Join([]string{strconv.FormatInt(tr.Seq, 10), tr.At.Local().Format("2006-01-02 15:04:05.000"),
			from, tr.To, strconv.Itoa(tr.Attempt), tr.Reason, oneLine(tr.Message)}, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}

// oneLine keeps a table row on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
