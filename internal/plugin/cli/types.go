package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

func newTypesCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "types [NAME]",
		Short: "List the task types the cluster's operators run, or show one's params",
		Long: "Without NAME, list the task types the taskpilot operators of the cluster publish (kubectl get\n" +
			"tasktypes). With NAME, show the type's description, which deployments serve it, its params\n" +
			"(from the JSON Schema its operator publishes) and an example BackgroundTask to start from.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return runTypeList(cmd.Context(), o)
			}
			return runTypeShow(cmd.Context(), o, args[0])
		},
	}
}

func runTypeList(ctx context.Context, o *options) error {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	table, err := getResourceTable(ctx, cfg, "tasktypes", "", "", "")
	if err != nil {
		return err
	}
	if len(table.Rows) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "No task types published: is a taskpilot operator running?")
		return nil
	}
	return printTable(o.streams.Out, table, false, false)
}

func runTypeShow(ctx context.Context, o *options, name string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	var tt v1alpha1.TaskType
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &tt); err != nil {
		return fmt.Errorf("task type %s: %w", name, err)
	}
	return printType(o.streams.Out, &tt)
}

// printType shows one task type: what it is, who serves it, its params, an example.
func printType(w io.Writer, tt *v1alpha1.TaskType) error {
	if len(tt.Status.ServedBy) == 0 {
		fmt.Fprintf(w, "Task type %s: no operator deployment serves it.\n", tt.Name)
		return nil
	}
	s := tt.Status.ServedBy[0]
	fmt.Fprintf(w, "Task type:    %s\nDescription:  %s\n", tt.Name, s.Description)
	var servers []string
	for _, e := range tt.Status.ServedBy {
		servers = append(servers, e.Namespace+"/"+e.Deployment)
	}
	fmt.Fprintf(w, "Served by:    %s\n", strings.Join(servers, ", "))
	for _, c := range tt.Status.Conditions {
		if c.Type == v1alpha1.ConditionConflict && c.Status == "True" {
			fmt.Fprintf(w, "Conflict:     %s\n", c.Message)
		}
	}
	fmt.Fprintln(w, "\nParams:")
	var schema paramsSchema
	if s.ParamsSchema != nil {
		if err := json.Unmarshal(s.ParamsSchema.Raw, &schema); err != nil {
			return fmt.Errorf("read the params schema of %s: %w", tt.Name, err)
		}
	}
	if err := schema.print(w); err != nil {
		return err
	}
	example := map[string]any{}
	if s.Example != nil {
		if err := json.Unmarshal(s.Example.Raw, &example); err != nil {
			return fmt.Errorf("read the params example of %s: %w", tt.Name, err)
		}
	}
	manifest, err := yaml.Marshal(map[string]any{
		"apiVersion": v1alpha1.GroupVersion().String(), "kind": "BackgroundTask",
		"metadata": map[string]any{"name": "my-" + tt.Name},
		"spec":     map[string]any{"taskName": tt.Name, "params": example},
	})
	if err != nil {
		return fmt.Errorf("write the example: %w", err)
	}
	fmt.Fprintf(w, "\nExample:\n%s", indent(string(manifest), "  "))
	return nil
}

// paramsSchema is the part of a JSON Schema `types` shows.
type paramsSchema struct {
	Properties           map[string]paramSchema `json:"properties"`
	Required             []string               `json:"required"`
	AdditionalProperties *bool                  `json:"additionalProperties"`
}

type paramSchema struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	Minimum     *json.Number
	Maximum     *json.Number
}

func (s paramsSchema) print(w io.Writer) error {
	if len(s.Properties) == 0 {
		if s.AdditionalProperties == nil || *s.AdditionalProperties {
			fmt.Fprintln(w, "  any JSON object (the task type publishes no schema)")
		} else {
			fmt.Fprintln(w, "  none")
		}
		return nil
	}
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "  FIELD\tTYPE\tREQUIRED\tDESCRIPTION")
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.Properties {
			if !yield(k) {
				return
			}
		}
	}) {
		p := s.Properties[name]
		req := ""
		if slices.Contains(s.Required, name) {
			req = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", name, p.Type, req, p.Description)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}
