package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

// scheduleRef reads `bts/NAME` (or taskschedule/NAME, taskschedules/NAME): a TaskSchedule
// rather than a BackgroundTask.
func scheduleRef(arg string) (string, bool) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		return "", false
	}
	switch strings.ToLower(kind) {
	case "bts", "taskschedule", "taskschedules", "taskschedule.tasks.taskpilot.dev", "taskschedules.tasks.taskpilot.dev":
		return name, true
	}
	return "", false
}

func newRunNowCommand(o *options) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "run-now SCHEDULE [-n NAMESPACE]",
		Short: "Create one BackgroundTask from a TaskSchedule's template now",
		Long: "Ask the operator for one run of the TaskSchedule now, as kubectl create job --from=cronjob/NAME\n" +
			"does: it sets the annotation " + v1alpha1.AnnotationRunNow + " to the current time, and the operator\n" +
			"creates SCHEDULE-manual-<Unix milliseconds> from the template once, whatever suspend and\n" +
			"concurrencyPolicy say, records it as a manual firing (kubectl taskpilot history bts/SCHEDULE)\n" +
			"and removes the annotation. A request still waiting for the operator is waited for first\n" +
			"(--wait), so two requests are two runs.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if n, ok := scheduleRef(name); ok {
				name = n
			}
			return runNow(cmd.Context(), o, name, wait)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for an earlier run-now request of the schedule to be taken")
	return cmd
}

// runNowPoll is how often run-now looks whether an earlier request was taken.
const runNowPoll = 200 * time.Millisecond

func runNow(ctx context.Context, o *options, name string, wait time.Duration) error {
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		ts := &v1alpha1.TaskSchedule{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ts); err != nil {
			return fmt.Errorf("read taskschedule %s/%s: %w", ns, name, err)
		}
		if pending, ok := ts.Annotations[v1alpha1.AnnotationRunNow]; ok {
			if time.Now().After(deadline) {
				return fmt.Errorf("taskschedule %s/%s: the run requested at %s is still waiting for the operator after %s "+
					"(is a taskpilot operator running and leading?)", ns, name, pending, wait)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(runNowPoll):
			}
			continue
		}
		at := time.Now().UTC().Truncate(time.Millisecond)
		orig := ts.DeepCopy()
		if ts.Annotations == nil {
			ts.Annotations = map[string]string{}
		}
		ts.Annotations[v1alpha1.AnnotationRunNow] = at.Format(time.RFC3339Nano)
		// Optimistic: a request set by someone else meanwhile is not overwritten.
		err := c.Patch(ctx, ts, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(bulk.FieldManager))
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("request a run of taskschedule %s/%s: %w", ns, name, err)
		}
		_, err = fmt.Fprintf(o.streams.Out, "taskschedule/%s: run requested at %s; the operator creates backgroundtask/%s-manual-%d\n",
			name, at.Format(time.RFC3339Nano), name, at.UnixMilli())
		return err
	}
}

// runScheduleHistory prints the firings of a TaskSchedule, newest first.
func runScheduleHistory(ctx context.Context, o *options, db *taskdb.DB, ns, name, output string) error {
	firings, err := db.Firings(ctx, ns, name, 200)
	if err != nil {
		return err
	}
	if len(firings) == 0 {
		return fmt.Errorf("no firings of taskschedule %s/%s recorded in the database", ns, name)
	}
	switch output {
	case "json":
		b, err := json.MarshalIndent(map[string]any{"firings": firings}, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintln(o.streams.Out, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(map[string]any{"firings": firings})
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = o.streams.Out.Write(b)
		return err
	}
	return printFirings(o.streams.Out, firings)
}

func printFirings(w io.Writer, firings []taskdb.Firing) error {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "SLOT\tOUTCOME\tTASK\tMANUAL\tREASON")
	for _, f := range firings {
		fmt.Fprintln(tw, strings.Join([]string{f.Slot.Local().Format("2006-01-02 15:04:05 MST"), f.Outcome,
			nonEmptyCell(f.TaskName), strconv.FormatBool(f.Manual), oneLine(f.Reason)}, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write firings: %w", err)
	}
	return nil
}

func nonEmptyCell(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
