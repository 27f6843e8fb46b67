package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// nonRoot is the user and group the image runs as (distroless's "nonroot").
const nonRoot = 65532

// caBundle is where the image keeps the CA certificates (PostgreSQL with sslmode=verify-full
// checks its server against them), copied from the building machine.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// config is one image to build: a Go main package, compiled statically for each platform,
// as the only program of an image with nothing else in it.
type config struct {
	// ModuleDir is the Go module to build in; Main the main package in it ("." or ./cmd/x).
	ModuleDir, Main string
	// Binary is the program's name in the image (/Binary is the entrypoint).
	Binary string
	// Version and Revision are stamped into the binary (internal/version) and the labels.
	Version, Revision string
	// Source is the repository URL of the labels.
	Source string
	// Platforms are os/arch pairs (linux/amd64, linux/arm64).
	Platforms []v1.Platform
	// Created is the images' creation time (the commit's time keeps builds reproducible).
	Created time.Time
	// Out is the OCI image layout directory written; Tarballs, when set, is a directory that
	// gets a docker-loadable tarball per platform (`docker load -i`).
	Out, Tarballs string
	// Ref is the reference the layout and the tarballs name the image by (taskpilot:v0.1.0).
	Ref string
}

// built is what build wrote.
type built struct {
	Index    v1.Hash
	Images   map[string]v1.Hash // by platform, os/arch
	Tarballs []string
}

// build compiles the binary for every platform, makes an image of each (the binary, the CA
// certificates, /etc/passwd for the non-root user, an empty /tmp), puts them in one image
// index and writes it as an OCI image layout.
func build(ctx context.Context, c config) (built, error) {
	res := built{Images: map[string]v1.Hash{}}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	tmp, err := os.MkdirTemp("", "taskpilot-image-")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	for _, p := range c.Platforms {
		bin := filepath.Join(tmp, p.OS+"-"+p.Architecture, c.Binary)
		if err := compile(ctx, c, p, bin); err != nil {
			return res, err
		}
		img, err := image(c, p, bin)
		if err != nil {
			return res, fmt.Errorf("image for %s/%s: %w", p.OS, p.Architecture, err)
		}
		h, err := img.Digest()
		if err != nil {
			return res, err
		}
		res.Images[p.OS+"/"+p.Architecture] = h
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		if c.Tarballs != "" {
			f, err := writeTarball(c, p, img)
			if err != nil {
				return res, err
			}
			res.Tarballs = append(res.Tarballs, f)
		}
	}
	if res.Index, err = idx.Digest(); err != nil {
		return res, err
	}
	if err := os.RemoveAll(c.Out); err != nil {
		return res, err
	}
	lp, err := layout.Write(c.Out, empty.Index)
	if err != nil {
		return res, fmt.Errorf("write the layout %s: %w", c.Out, err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": c.Ref,
	})); err != nil {
		return res, fmt.Errorf("write the layout %s: %w", c.Out, err)
	}
	return res, nil
}

// compile builds the main package statically for p, with the version stamped.
func compile(ctx context.Context, c config, p v1.Platform, out string) error {
	ldflags := fmt.Sprintf("-s -w -X %[1]s.stamped=%[2]s -X %[1]s.stampedRevision=%[3]s", versionPkg, c.Version, c.Revision)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, c.Main)
	cmd.Dir = c.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w", c.Main, p.OS, p.Architecture, err)
	}
	return nil
}

// versionPkg is the package whose variables the linker stamps.
const versionPkg = "github.com/taskpilot/taskpilot/internal/version"

// image is the image of one platform's binary.
func image(c config, p v1.Platform, bin string) (v1.Image, error) {
	files, err := rootFS(c.Binary, bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(files)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: c.Created}, CreatedBy: "hack/image: " + c.Binary + " " + c.Version, Comment: "static Go binary",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: c.Created}
	cf.Config.User = fmt.Sprintf("%d:%d", nonRoot, nonRoot)
	cf.Config.Entrypoint = []string{"/" + c.Binary}
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"SSL_CERT_FILE=" + caBundle}
	cf.Config.Labels = labels(c)
	return mutate.ConfigFile(img, cf)
}

// labels are the OCI annotations of the image's config.
func labels(c config) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    c.Binary,
		"org.opencontainers.image.version":  c.Version,
		"org.opencontainers.image.revision": c.Revision,
		"org.opencontainers.image.source":   c.Source,
		"org.opencontainers.image.created":  c.Created.UTC().Format(time.RFC3339),
	}
}

// rootFS is the image's one layer, as a tar: the binary at /name, owned by root and executable
// by all; /etc/passwd and /etc/group naming the non-root user; the CA certificates; /tmp.
// Every entry has the same fixed time, so the same binary gives the same layer digest.
func rootFS(name, bin string) ([]byte, error) {
	program, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("the CA certificates of this machine (%s), which the image carries: %w", caBundle, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dir := func(path string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data)),
			ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonRoot, nonRoot)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonRoot)
	for _, step := range []func() error{
		func() error { return dir("etc", 0o755) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("etc/ssl", 0o755) },
		func() error { return dir("etc/ssl/certs", 0o755) },
		func() error { return file(strings.TrimPrefix(caBundle, "/"), 0o644, certs) },
		func() error { return dir("tmp", 0o1777) },
		func() error { return file(name, 0o755, program) },
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeTarball writes one platform's image as a tarball `docker load` reads.
func writeTarball(c config, p v1.Platform, img v1.Image) (string, error) {
	if err := os.MkdirAll(c.Tarballs, 0o755); err != nil {
		return "", err
	}
	ref, err := parseTag(c.Ref)
	if err != nil {
		return "", err
	}
	f := filepath.Join(c.Tarballs, fmt.Sprintf("%s-%s-%s-%s.tar", c.Binary, c.Version, p.OS, p.Architecture))
	if err := tarball.WriteToFile(f, ref, img); err != nil {
		return "", fmt.Errorf("write %s: %w", f, err)
	}
	return f, nil
}

// commitTime is the time of HEAD's commit, if this is a git checkout.
func commitTime() (time.Time, bool) {
	out, err := exec.Command("git", "log", "-1", "--format=%cI").Output()
	if err != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(out)))
	return t.UTC(), err == nil
}
