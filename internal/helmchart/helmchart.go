// Package helmchart lints, renders and packages taskpilot's Helm chart (charts/taskpilot) with
// the Helm library, as `helm lint`, `helm template` and `helm package` would: for the chart's
// tests (test/chart) and for `make release` (hack/chart). The operator does not import it.
package helmchart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/semver"
	"helm.sh/helm/v4/pkg/chart/common"
	cutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

// KubeVersion is the Kubernetes version charts are linted and rendered for unless told
// otherwise: the oldest the chart supports with its defaults (ValidatingAdmissionPolicy v1).
// The library's own default is 1.20 under `go test`, which the chart refuses.
const KubeVersion = "v1.30.0"

// Release names an installation: what `helm install NAME --namespace NS` gives the templates.
type Release struct {
	Name, Namespace string
	// KubeVersion is the cluster's version (KubeVersion when empty).
	KubeVersion string
	// Upgrade renders for `helm upgrade` instead of `helm install`.
	Upgrade bool
}

// Values reads values files, later ones overriding earlier ones key by key, as -f does.
func Values(files ...string) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		v, err := loader.LoadValues(fh)
		_ = fh.Close()
		if err != nil {
			return nil, fmt.Errorf("values %s: %w", f, err)
		}
		vals = loader.MergeMaps(vals, v)
	}
	return vals, nil
}

// Lint lints the chart in dir with vals as `helm lint --strict` does: any error or warning is
// an error, listing every message.
func Lint(dir string, vals map[string]any, rel Release) error {
	kv, err := common.ParseKubeVersion(orDefault(rel.KubeVersion))
	if err != nil {
		return err
	}
	l := lint.RunAll(dir, vals, rel.Namespace, lint.WithKubeVersion(kv))
	var msgs []string
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			msgs = append(msgs, m.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("lint %s:\n%s", dir, strings.Join(msgs, "\n"))
	}
	return nil
}

// Manifest is one rendered object's YAML and the file it came from.
type Manifest struct {
	Source, YAML string
	// Hook is the manifest's helm.sh/hook events ("" for an ordinary object).
	Hook string
}

// Render renders the chart in dir as `helm template --include-crds` does: the CRDs, then the
// objects in install order, then the hooks.
func Render(ctx context.Context, dir string, vals map[string]any, rel Release) ([]Manifest, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	if err := chartutil.ProcessDependencies(ch, vals); err != nil {
		return nil, err
	}
	kv, err := common.ParseKubeVersion(orDefault(rel.KubeVersion))
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	if err := checkKubeVersion(ch, kv); err != nil {
		return nil, err
	}
	rv, err := cutil.ToRenderValuesWithSchemaValidation(ch, vals, common.ReleaseOptions{Name: rel.Name,
		Namespace: rel.Namespace, Revision: 1, IsInstall: !rel.Upgrade, IsUpgrade: rel.Upgrade}, caps, false)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := engine.Engine{Strict: true}.RenderWithContext(ctx, ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	var out []Manifest
	for _, c := range ch.CRDObjects() {
		out = append(out, Manifest{Source: c.Filename, YAML: string(c.File.Data)})
	}
	for _, m := range manifests {
		out = append(out, Manifest{Source: m.Name, YAML: m.Content})
	}
	for _, h := range hooks {
		var events []string
		for _, e := range h.Events {
			events = append(events, string(e))
		}
		out = append(out, Manifest{Source: h.Path, YAML: h.Manifest, Hook: strings.Join(events, ",")})
	}
	return out, nil
}

// checkKubeVersion refuses a cluster the chart's kubeVersion excludes, as helm install does.
func checkKubeVersion(ch *chart.Chart, kv *common.KubeVersion) error {
	if ch.Metadata.KubeVersion == "" {
		return nil
	}
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, kv.String()) {
		return fmt.Errorf("chart requires kubeVersion %s, which Kubernetes %s is not", ch.Metadata.KubeVersion, kv)
	}
	return nil
}

// Package writes the chart in dir as destDir/<name>-<version>.tgz with the version and
// appVersion given (semantic versions, with or without the leading v) and returns its path.
func Package(dir, version, appVersion, destDir string) (string, error) {
	if !semver.IsValid("v" + strings.TrimPrefix(version, "v")) {
		return "", fmt.Errorf("chart version %q is not a semantic version", version)
	}
	if appVersion == "" {
		return "", errors.New("package: no appVersion")
	}
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return "", fmt.Errorf("load chart %s: %w", dir, err)
	}
	ch.Metadata.Version, ch.Metadata.AppVersion = strings.TrimPrefix(version, "v"), appVersion
	if err := os.MkdirAll(destDir, 0o750); err != nil {
		return "", err
	}
	p, err := chartutil.Save(ch, destDir)
	if err != nil {
		return "", fmt.Errorf("package %s: %w", dir, err)
	}
	return filepath.Clean(p), nil
}

// Versions reads a chart's (a directory's or a package's) version and appVersion.
func Versions(path string) (version, appVersion string, err error) {
	ch, err := loader.Load(path)
	if err != nil {
		return "", "", fmt.Errorf("load chart %s: %w", path, err)
	}
	return ch.Metadata.Version, ch.Metadata.AppVersion, nil
}

// YAML joins rendered manifests into one stream, as helm template prints them.
func YAML(ms []Manifest) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Source, strings.TrimPrefix(strings.TrimSpace(m.YAML), "---\n"))
	}
	return b.String()
}

func orDefault(v string) string {
	if v == "" {
		return KubeVersion
	}
	return v
}
