package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/require"
)

// TestTheImageRunsItsBinaryAsNonRoot builds taskpilot's image as `make image` does (for this
// machine's platform only: cross-compiling is `make image`'s time, not the tests'), opens the
// layout as a registry client would, and checks what a cluster relies on: the platform, the
// non-root user, the entrypoint, the labels, the files of the layer, and that the binary in it
// runs and says the version it was stamped with.
func TestTheImageRunsItsBinaryAsNonRoot(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image is a linux image; its binary runs on linux only")
	}
	host := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	created := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := config{ModuleDir: "../..", Main: ".", Binary: "taskpilot", Version: "v0.0.0-test", Revision: "0123abcd",
		Source: "https://github.com/taskpilot/taskpilot", Platforms: []v1.Platform{host}, Created: created,
		Out: filepath.Join(t.TempDir(), "layout"), Ref: "taskpilot:v0.0.0-test"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := build(ctx, c)
	require.NoError(t, err)

	top, err := layout.ImageIndexFromPath(c.Out)
	require.NoError(t, err)
	require.NoError(t, validate.Index(top), "every blob is what its descriptor says")
	tm, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, tm.Manifests, 1)
	require.Equal(t, "taskpilot:v0.0.0-test", tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	require.Equal(t, res.Index, tm.Manifests[0].Digest)
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	require.NoError(t, err)
	mt, err := idx.MediaType()
	require.NoError(t, err)
	require.Equal(t, types.OCIImageIndex, mt)

	imgs, err := partial.FindImages(idx, match.Platforms(host))
	require.NoError(t, err)
	require.Len(t, imgs, 1)
	img := imgs[0]
	mt, err = img.MediaType()
	require.NoError(t, err)
	require.Equal(t, types.OCIManifestSchema1, mt)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, host.OS, cf.OS)
	require.Equal(t, host.Architecture, cf.Architecture)
	require.Equal(t, "65532:65532", cf.Config.User)
	require.Equal(t, []string{"/taskpilot"}, cf.Config.Entrypoint)
	require.Equal(t, created, cf.Created.UTC())
	require.Equal(t, map[string]string{
		"org.opencontainers.image.title":    "taskpilot",
		"org.opencontainers.image.version":  "v0.0.0-test",
		"org.opencontainers.image.revision": "0123abcd",
		"org.opencontainers.image.source":   "https://github.com/taskpilot/taskpilot",
		"org.opencontainers.image.created":  "2026-12-01T12:00:00Z",
	}, cf.Config.Labels)
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1, "one layer, on an empty base")

	dir := t.TempDir()
	files := extract(t, img, "taskpilot", dir)
	require.Equal(t, map[string]int64{"etc": 0o755, "etc/passwd": 0o644, "etc/group": 0o644, "etc/ssl": 0o755,
		"etc/ssl/certs": 0o755, "etc/ssl/certs/ca-certificates.crt": 0o644, "tmp": 0o1777, "taskpilot": 0o755}, files)

	exe := filepath.Join(dir, "taskpilot")
	out, err := exec.Command(exe, "version", "-o", "json").Output()
	require.NoError(t, err)
	var v struct{ Version, Revision, Platform string }
	require.NoError(t, json.Unmarshal(out, &v))
	require.Equal(t, "v0.0.0-test", v.Version)
	require.Equal(t, "0123abcd", v.Revision)
	require.Equal(t, host.OS+"/"+host.Architecture, v.Platform)

	again, err := build(ctx, config{ModuleDir: c.ModuleDir, Main: c.Main, Binary: c.Binary, Version: c.Version,
		Revision: c.Revision, Source: c.Source, Platforms: c.Platforms, Created: c.Created,
		Out: filepath.Join(t.TempDir(), "again"), Ref: c.Ref})
	require.NoError(t, err)
	require.Equal(t, res.Index, again.Index, "the same source, version and time give the same image")
}

// extract lists the layer's files with their modes, and writes the binary named bin into dir.
func extract(t *testing.T, img v1.Image, bin, dir string) map[string]int64 {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	files := map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		require.NoError(t, err)
		files[h.Name] = h.Mode
		if h.Name == bin {
			require.Zero(t, h.Uid, "the binary belongs to root: the non-root user cannot change it")
			f, err := os.OpenFile(filepath.Join(dir, bin), os.O_CREATE|os.O_WRONLY, 0o755)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	}
}
