// Command chart lints, renders and packages charts/taskpilot with the Helm library
// (internal/helmchart), for those without a helm binary: `make chart-template` and
// `make release` run it.
//
//	go run ./hack/chart lint     [-f values.yaml]...
//	go run ./hack/chart template [-f values.yaml]... [-name taskpilot] [-namespace taskpilot-system]
//	go run ./hack/chart package  -version v0.1.0 -out dist
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/taskpilot/taskpilot/internal/helmchart"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("want a command: lint, template or package")
	}
	fs := flag.NewFlagSet("chart "+args[0], flag.ContinueOnError)
	dir := fs.String("chart", "charts/taskpilot", "the chart directory")
	var values files
	fs.Var(&values, "f", "a values file (repeatable; later ones win)")
	name := fs.String("name", "taskpilot", "the release name")
	namespace := fs.String("namespace", "taskpilot-system", "the release namespace")
	kube := fs.String("kube-version", helmchart.KubeVersion, "the cluster's Kubernetes version")
	version := fs.String("version", "", "package: the chart's version (vX.Y.Z)")
	appVersion := fs.String("app-version", "", "package: the appVersion (default: -version)")
	out := fs.String("out", "dist", "package: the directory the .tgz goes to")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	vals, err := helmchart.Values(values...)
	if err != nil {
		return err
	}
	rel := helmchart.Release{Name: *name, Namespace: *namespace, KubeVersion: *kube}
	switch args[0] {
	case "lint":
		if err := helmchart.Lint(*dir, vals, rel); err != nil {
			return err
		}
		fmt.Printf("%s: lint passed\n", *dir)
	case "template":
		ms, err := helmchart.Render(context.Background(), *dir, vals, rel)
		if err != nil {
			return err
		}
		fmt.Print(helmchart.YAML(ms))
	case "package":
		if *version == "" {
			return fmt.Errorf("package: -version is required")
		}
		p, err := helmchart.Package(*dir, *version, cmp.Or(*appVersion, *version), *out)
		if err != nil {
			return err
		}
		fmt.Println(p)
	default:
		return fmt.Errorf("unknown command %q: want lint, template or package", args[0])
	}
	return nil
}
