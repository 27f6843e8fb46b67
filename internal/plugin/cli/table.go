package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/rest"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

// tableAccept asks the API server for the object's table, the one kubectl prints: its printer
// columns (the CRD's, Replica among them at priority 1) and each row's metadata.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

// getTable reads the tasks in scope as the API server's table, as `kubectl get bgt` does.
func getTable(ctx context.Context, cfg *rest.Config, sc *scope) (*metav1.Table, error) {
	if len(sc.names) == 0 {
		selector := ""
		if !sc.sel.Empty() {
			selector = sc.sel.String()
		}
		return getResourceTable(ctx, cfg, "backgroundtasks", sc.namespace, "", selector)
	}
	var all *metav1.Table
	for _, n := range sc.names {
		t, err := getResourceTable(ctx, cfg, "backgroundtasks", sc.namespace, n, "")
		if err != nil {
			return nil, err
		}
		if all == nil {
			all = t
		} else {
			all.Rows = append(all.Rows, t.Rows...)
		}
	}
	return all, nil
}

// getResourceTable reads resource of tasks.taskpilot.dev/v1alpha1 as the API server's table:
// one object (name), or a list (in namespace, "" for all or for a cluster-scoped resource,
// matching selector).
func getResourceTable(ctx context.Context, cfg *rest.Config, resource, namespace, name, selector string) (*metav1.Table, error) {
	rc, err := tasksRESTClient(cfg)
	if err != nil {
		return nil, err
	}
	req := rc.Get().Resource(resource).SetHeader("Accept", tableAccept).Param("includeObject", string(metav1.IncludeMetadata))
	if namespace != "" {
		req = req.Namespace(namespace)
	}
	if name != "" {
		req = req.Name(name)
	} else if selector != "" {
		req = req.Param("labelSelector", selector)
	}
	raw, err := req.DoRaw(ctx)
	if err != nil {
		if name != "" {
			return nil, fmt.Errorf("get %s: %w", name, err)
		}
		return nil, fmt.Errorf("list %s: %w", resource, err)
	}
	var t metav1.Table
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("read the API server's table: %w", err)
	}
	return &t, nil
}

// tasksRESTClient talks to the tasks.taskpilot.dev/v1alpha1 API.
func tasksRESTClient(cfg *rest.Config) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	gv := v1alpha1.GroupVersion()
	c.GroupVersion, c.APIPath = &gv, "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("create a client for %s: %w", gv, err)
	}
	return rc, nil
}

// withLastTransition adds the LAST TRANSITION column from PostgreSQL to the API server's table.
func withLastTransition(t *metav1.Table, last map[string]taskdb.Transition, now time.Time) error {
	t.ColumnDefinitions = append(t.ColumnDefinitions, metav1.TableColumnDefinition{Name: "Last Transition", Type: "string",
		Description: "The last transition recorded in PostgreSQL"})
	for i := range t.Rows {
		var m metav1.PartialObjectMetadata
		if len(t.Rows[i].Object.Raw) > 0 {
			if err := json.Unmarshal(t.Rows[i].Object.Raw, &m); err != nil {
				return fmt.Errorf("read a row's metadata: %w", err)
			}
			t.Rows[i].Object = runtime.RawExtension{Object: &m}
		}
		t.Rows[i].Cells = append(t.Rows[i].Cells, transitionText(last[string(m.UID)], now))
	}
	return nil
}

// printTable prints the table as kubectl does (-o wide adds the priority columns).
func printTable(w io.Writer, t *metav1.Table, wide, withNamespace bool) error {
	p := printers.NewTablePrinter(printers.PrintOptions{Wide: wide, WithNamespace: withNamespace})
	if err := p.PrintObj(t, w); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}
