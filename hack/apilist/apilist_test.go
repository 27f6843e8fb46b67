package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTheAPIListingsAreCurrent fails while a public package's exported API differs from its
// listing in docs/api: a change to the public surface must show in review. `make api` rewrites
// the listings.
func TestTheAPIListingsAreCurrent(t *testing.T) {
	stale, err := update("../..", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range stale {
		t.Errorf("%s is stale: run `make api` and review the diff of the public API", f)
	}
}

// TestAListingShowsOnlyTheExportedSurface: unexported declarations, fields, methods and
// embedded types are left out (and said to be), doc comments and bodies too, and generic and
// pointer receivers are attributed to their type.
func TestAListingShowsOnlyTheExportedSurface(t *testing.T) {
	dir := t.TempDir()
	src := `package demo

// Limit is documented.
const Limit = 3

const hidden = 4

// Var is a variable.
var Var, other = 1, 2

type inner struct{}

// Box holds things.
type Box[T any] struct {
	// Items are the things.
	Items []T
	count int
	inner
	Nested struct {
		Shown  bool
		hidden bool
	}
}

// Len counts.
func (b *Box[T]) Len() int { return len(b.Items) }

func (b *Box[T]) grow() {}

// Doer does.
type Doer interface {
	Do() error
	secret()
}

func (inner) Visible() {}

// New makes one.
func New[T any]() *Box[T] { return &Box[T]{} }
`
	if err := os.WriteFile(filepath.Join(dir, "demo.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), "demo.go", src, 0); err != nil {
		t.Fatal(err)
	}
	got, err := listing(dir, "example.com/demo")
	if err != nil {
		t.Fatal(err)
	}
	want := `package demo // import "example.com/demo"

const Limit = 3

var Var = 1

func New[T any]() *Box[T]

type Box[T any] struct {
	Items []T
	Nested struct {
		Shown bool
		/* contains filtered or unexported fields */
	}
	/* contains filtered or unexported fields */
}
func (b *Box[T]) Len() int

type Doer interface {
	Do() error
	/* contains filtered or unexported fields */
}
`
	if got != want {
		t.Errorf("listing:\n%s\nwant:\n%s", got, want)
	}
	for _, hidden := range []string{"hidden", "count", "grow", "secret", "inner", "Visible", "documented"} {
		if strings.Contains(got, hidden) {
			t.Errorf("listing shows %q", hidden)
		}
	}
}
