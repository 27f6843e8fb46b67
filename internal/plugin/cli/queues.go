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
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
)

func newQueueCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue [pause|resume] [NAME] [-n NAMESPACE | -A]",
		Short: "List TaskQueues, or pause and resume one",
		Long: "Without a verb, list the TaskQueues with what PostgreSQL holds for them (running, pending,\n" +
			"paused tasks, the oldest wait). `queue pause NAME` stops the queue from starting tasks (its\n" +
			"running tasks go on; --drain parks them at their next pause point); --until resumes it by\n" +
			"itself at a time. `queue resume NAME` starts tasks again. Merge patches of spec, under the\n" +
			"field manager \"" + bulk.FieldManager + "\".",
		Args: cobra.NoArgs,
	}
	var allNamespaces bool
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return listQueues(cmd.Context(), o, allNamespaces) }
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "List the queues of every namespace")
	var until string
	var drain bool
	pause := &cobra.Command{
		Use:   "pause NAME [--until TIME|DURATION] [--drain]",
		Short: "Start no task of the queue (until a time, with --until)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var at *time.Time
			if until != "" {
				t, err := parseUntil(until, time.Now())
				if err != nil {
					return err
				}
				at = &t
			}
			return patchQueue(cmd.Context(), o, args[0], queuePausePatch(true, at, drain))
		},
	}
	pause.Flags().StringVar(&until, "until", "", "resume by itself then: an RFC 3339 time (2026-12-06T14:00:00Z) or a duration from now (90m)")
	pause.Flags().BoolVar(&drain, "drain", false, "also park the running tasks at their next pause point (spec.drain: Pause)")
	resume := &cobra.Command{
		Use:   "resume NAME",
		Short: "Start the queue's tasks again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return patchQueue(cmd.Context(), o, args[0], queuePausePatch(false, nil, false))
		},
	}
	cmd.AddCommand(pause, resume)
	return cmd
}

// parseUntil reads --until: an RFC 3339 time, or a duration from now.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--until %q: want an RFC 3339 time (2026-12-06T14:00:00Z) or a positive duration (90m)", s)
	}
	return now.Add(d).Truncate(time.Second), nil
}

// queuePausePatch is the merge patch of a pause (until: resume by itself then; drain: park
// the running tasks) or of a resume (which clears pausedUntil and drain).
func queuePausePatch(paused bool, until *time.Time, drain bool) []byte {
	spec := map[string]any{"paused": paused, "pausedUntil": nil, "drain": nil}
	if paused && until != nil {
		spec["pausedUntil"] = until.UTC().Format(time.RFC3339)
	}
	if paused && drain {
		spec["drain"] = string(v1alpha1.DrainPause)
	}
	b, _ := json.Marshal(map[string]any{"spec": spec}) //nolint:errchkjson // plain maps of strings and bools
	return b
}

func patchQueue(ctx context.Context, o *options, name string, patch []byte) error {
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q := &v1alpha1.TaskQueue{}
	q.Namespace, q.Name = ns, name
	if err := c.Patch(ctx, q, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(bulk.FieldManager)); err != nil {
		return fmt.Errorf("taskqueue %s/%s: %w", ns, name, err)
	}
	state := "resumed"
	if q.Spec.Paused {
		state = "paused"
		if q.Spec.PausedUntil != nil {
			state += " until " + q.Spec.PausedUntil.UTC().Format(time.RFC3339)
		}
		if q.Spec.Drain == v1alpha1.DrainPause {
			state += "; its running tasks park at their next pause point"
		}
	}
	_, err = fmt.Fprintf(o.streams.Out, "taskqueue/%s %s\n", name, state)
	return err
}

func listQueues(ctx context.Context, o *options, allNamespaces bool) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	if !allNamespaces {
		ns, err := o.namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(ns))
	}
	var list v1alpha1.TaskQueueList
	if err := c.List(ctx, &list, opts...); err != nil {
		return fmt.Errorf("list taskqueues: %w", err)
	}
	return printQueues(o.streams.Out, list.Items, time.Now())
}

func printQueues(w io.Writer, queues []v1alpha1.TaskQueue, now time.Time) error {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tCONCURRENCY\tRUNNING\tPENDING\tPAUSED TASKS\tSTATE\tOLDEST WAIT")
	for _, q := range queues {
		state := "admitting"
		if meta.IsStatusConditionTrue(q.Status.Conditions, v1alpha1.ConditionPaused) {
			state = "paused"
			if q.Spec.PausedUntil != nil {
				state += " until " + q.Spec.PausedUntil.UTC().Format(time.RFC3339)
			}
		}
		oldest := "-"
		if q.Status.OldestPendingSince != nil {
			oldest = duration.HumanDuration(now.Sub(q.Status.OldestPendingSince.Time))
		}
		fmt.Fprintln(tw, strings.Join([]string{q.Namespace, q.Name, strconv.Itoa(int(q.Spec.Concurrency)), strconv.Itoa(int(q.Status.Running)),
			strconv.Itoa(int(q.Status.Pending)), strconv.Itoa(int(q.Status.Paused)), state, oldest}, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write queues: %w", err)
	}
	return nil
}
