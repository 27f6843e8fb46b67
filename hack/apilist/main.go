// Command apilist writes the exported API of taskpilot's public packages to docs/api/, one
// listing per package, so that a change to the public surface shows in review as a diff of
// those files: a test (apilist_test.go, part of make test) fails while a listing is stale, and
// `make api` rewrites them. Until the first release is tagged this is how an incompatible change
// becomes a decision; from then on apidiff against the last tag says the same with its verdict.
//
// Usage, from the module root:
//
//	go run ./hack/apilist            # rewrite docs/api/*.txt
//	go run ./hack/apilist -check     # exit 1 and name the stale listings
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// module is this module's import path.
const module = "github.com/taskpilot/taskpilot"

// publicPackages are the packages other modules build on, by directory: what a team
// embedding the operator, a task author and a producer import (controllers for the Settings
// that operator.Options embeds).
func publicPackages() []string {
	return []string{"api/lifecycle", "api/v1alpha1", "controllers", "operator", "runner", "runner/builtin", "runner/runnertest"}
}

// listingDir is where the listings are kept, relative to the module root.
const listingDir = "docs/api"

func main() {
	check := flag.Bool("check", false, "only compare: exit 1 if a listing is stale")
	root := flag.String("root", ".", "the module root")
	flag.Parse()
	stale, err := update(*root, !*check)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apilist:", err)
		os.Exit(2)
	}
	for _, f := range stale {
		if *check {
			fmt.Fprintf(os.Stderr, "apilist: %s is stale: run make api and review the diff\n", f)
		} else {
			fmt.Printf("apilist: wrote %s\n", f)
		}
	}
	if *check && len(stale) > 0 {
		os.Exit(1)
	}
}

// update compares every public package's listing with the one kept in listingDir, rewriting it
// when write is set, and returns the listings that differed.
func update(root string, write bool) ([]string, error) {
	var stale []string
	for _, dir := range publicPackages() {
		got, err := listing(filepath.Join(root, dir), module+"/"+dir)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(listingDir, listingName(dir))
		old, err := os.ReadFile(filepath.Join(root, file))
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		if bytes.Equal(old, []byte(got)) {
			continue
		}
		stale = append(stale, file)
		if !write {
			continue
		}
		if err := os.MkdirAll(filepath.Join(root, listingDir), 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", listingDir, err)
		}
		if err := os.WriteFile(filepath.Join(root, file), []byte(got), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", file, err)
		}
	}
	return stale, nil
}

// listingName is the file a package's listing is kept in: its directory, slashes as dots.
func listingName(dir string) string {
	return strings.ReplaceAll(filepath.ToSlash(dir), "/", ".") + ".txt"
}
