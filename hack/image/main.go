// Command image builds an operator's OCI image without a Docker engine: it cross-compiles a
// static binary for each platform, puts it alone on an empty base (non-root user 65532, the
// binary as entrypoint, the org.opencontainers.image.* labels), and writes one image index as
// an OCI image layout directory (and, with -tarballs, a `docker load` tarball per platform).
// `make image` runs it for taskpilot, `make image-examples` for the example team's operator:
// the same function, two binaries. Nothing is pushed; publishing is `crane push` or
// `skopeo copy oci:<dir> docker://<registry>/...` by a maintainer (README, "Releases").
//
//	go run ./hack/image -main . -binary taskpilot -version v0.1.0 -out bin/image/taskpilot
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var c config
	var platforms, created string
	flag.StringVar(&c.ModuleDir, "module", ".", "the Go module to build in")
	flag.StringVar(&c.Main, "main", ".", "the main package, in the module")
	flag.StringVar(&c.Binary, "binary", "taskpilot", "the program's name in the image (/NAME is the entrypoint)")
	flag.StringVar(&c.Version, "version", "", "the version stamped into the binary and the labels (required)")
	flag.StringVar(&c.Revision, "revision", "", "the commit, for the binary and the labels")
	flag.StringVar(&c.Source, "source", "https://github.com/taskpilot/taskpilot", "the repository, for the labels")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "os/arch pairs, comma separated")
	flag.StringVar(&created, "created", "", "creation time, RFC 3339 (default: the revision's commit time, else now)")
	flag.StringVar(&c.Out, "out", "", "the OCI image layout directory to write (required; replaced)")
	flag.StringVar(&c.Tarballs, "tarballs", "", "also write a docker-loadable tarball per platform into this directory")
	flag.StringVar(&c.Ref, "ref", "", "the image reference the layout and tarballs carry (default BINARY:VERSION)")
	flag.Parse()
	if c.Version == "" || c.Out == "" {
		return fmt.Errorf("-version and -out are required")
	}
	c.Ref = cmp.Or(c.Ref, c.Binary+":"+c.Version)
	if _, err := parseTag(c.Ref); err != nil {
		return err
	}
	var err error
	if c.Platforms, err = parsePlatforms(platforms); err != nil {
		return err
	}
	if c.Created, err = creationTime(created); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := build(ctx, c)
	if err != nil {
		return err
	}
	fmt.Printf("%s: image index %s (%s)\n", c.Out, res.Index, c.Ref)
	for _, p := range c.Platforms {
		key := p.OS + "/" + p.Architecture
		fmt.Printf("  %-12s %s\n", key, res.Images[key])
	}
	for _, f := range res.Tarballs {
		fmt.Printf("  tarball %s\n", f)
	}
	return nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.Split(s, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || osName == "" || arch == "" {
			return nil, fmt.Errorf("platform %q: want os/arch, as linux/arm64", p)
		}
		out = append(out, v1.Platform{OS: osName, Architecture: arch})
	}
	return out, nil
}

// creationTime is the images' creation time: given, or the commit's (so the same commit gives
// the same digests), or now outside a git checkout.
func creationTime(s string) (time.Time, error) {
	if s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("-created: %w", err)
		}
		return t.UTC(), nil
	}
	if t, ok := commitTime(); ok {
		return t, nil
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

func parseTag(ref string) (name.Tag, error) {
	t, err := name.NewTag(ref)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return t, nil
}
