package main

import (
	"bytes"
	"cmp"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
)

// listing is the exported API of the Go package in dir, read from its source: every exported
// declaration without its doc comment or body, struct fields and interface methods filtered to
// the exported ones, in a stable order (constants, variables, functions, then each type
// followed by its methods). Generated DeepCopy code (zz_generated*) is left out: it follows
// the types.
func listing(dir, importPath string) (string, error) {
	// go/build picks the files this platform builds (build tags), tests left out.
	bp, err := build.ImportDir(dir, 0)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", dir, err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, n := range bp.GoFiles {
		if strings.HasPrefix(n, "zz_generated") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", n, err)
		}
		files = append(files, f)
	}
	name := bp.Name
	var consts, vars, funcs []entry
	types := map[string]*typeEntry{}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				d.Doc, d.Body = nil, nil
				if d.Recv == nil {
					funcs = append(funcs, entry{d.Name.Name, render(fset, d)})
					continue
				}
				recv := receiverType(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				typeOf(types, recv).methods = append(typeOf(types, recv).methods, entry{d.Name.Name, render(fset, d)})
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						s.Doc, s.Comment = nil, nil
						filterType(s.Type)
						typeOf(types, s.Name.Name).decl = "type " + render(fset, s)
					case *ast.ValueSpec:
						s.Doc, s.Comment = nil, nil
						for i, n := range s.Names {
							if !n.IsExported() {
								continue
							}
							e := entry{n.Name, d.Tok.String() + " " + n.Name}
							if s.Type != nil {
								e.text += " " + render(fset, s.Type)
							}
							if i < len(s.Values) {
								e.text += " = " + render(fset, s.Values[i])
							}
							if d.Tok == token.CONST {
								consts = append(consts, e)
							} else {
								vars = append(vars, e)
							}
						}
					}
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s // import %q\n", name, importPath)
	for _, group := range [][]entry{consts, vars, funcs} {
		if len(group) == 0 {
			continue
		}
		b.WriteString("\n")
		for _, e := range sorted(group) {
			b.WriteString(e.text + "\n")
		}
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range types {
			if !yield(n) {
				return
			}
		}
	}) {
		t := types[n]
		if t.decl == "" {
			continue // methods of a type declared elsewhere (a build-tagged file)
		}
		b.WriteString("\n" + t.decl + "\n")
		for _, m := range sorted(t.methods) {
			b.WriteString(m.text + "\n")
		}
	}
	return b.String(), nil
}

type entry struct{ name, text string }

type typeEntry struct {
	decl    string
	methods []entry
}

func typeOf(types map[string]*typeEntry, name string) *typeEntry {
	if types[name] == nil {
		types[name] = &typeEntry{}
	}
	return types[name]
}

func sorted(es []entry) []entry {
	return slices.SortedFunc(slices.Values(es), func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.text, b.text))
	})
}

// receiverType is the name of a method's receiver type (T of *T, T[K] and so on).
func receiverType(x ast.Expr) string {
	switch x := x.(type) {
	case *ast.StarExpr:
		return receiverType(x.X)
	case *ast.IndexExpr:
		return receiverType(x.X)
	case *ast.IndexListExpr:
		return receiverType(x.X)
	case *ast.Ident:
		return x.Name
	}
	return ""
}

// filterType drops the unexported fields of a struct and the unexported methods of an
// interface, and every comment in them, saying so where something was dropped.
func filterType(x ast.Expr) {
	switch x := x.(type) {
	case *ast.StructType:
		x.Fields.List = exportedFields(x.Fields.List)
		for _, f := range x.Fields.List {
			filterType(f.Type)
		}
	case *ast.InterfaceType:
		x.Methods.List = exportedFields(x.Methods.List)
	}
}

func exportedFields(fields []*ast.Field) []*ast.Field {
	var out []*ast.Field
	dropped := false
	for _, f := range fields {
		f.Doc, f.Comment = nil, nil
		if len(f.Names) == 0 { // embedded
			if n := receiverType(embeddedName(f.Type)); n == "" || ast.IsExported(n) {
				out = append(out, f)
			} else {
				dropped = true
			}
			continue
		}
		var names []*ast.Ident
		for _, n := range f.Names {
			if n.IsExported() {
				names = append(names, n)
			} else {
				dropped = true
			}
		}
		if len(names) > 0 {
			f.Names = names
			out = append(out, f)
		}
	}
	if dropped {
		out = append(out, &ast.Field{Type: ast.NewIdent("/* contains filtered or unexported fields */")})
	}
	return out
}

// embeddedName is the type name of an embedded field (pkg.T counts as T).
func embeddedName(x ast.Expr) ast.Expr {
	if s, ok := x.(*ast.SelectorExpr); ok {
		return s.Sel
	}
	if s, ok := x.(*ast.StarExpr); ok {
		return embeddedName(s.X)
	}
	return x
}

// render prints a node on its own, without comments (only a file's comments are printed), in
// gofmt's layout.
func render(fset *token.FileSet, n ast.Node) string {
	var buf bytes.Buffer
	cfg := printer.Config{Mode: printer.UseSpaces | printer.TabIndent, Tabwidth: 8}
	if err := cfg.Fprint(&buf, fset, n); err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	// The blank lines left where comments were say nothing without them.
	lines := strings.Split(buf.String(), "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "" }), "\n")
}
