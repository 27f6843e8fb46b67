package v1alpha1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// TestPhasesAreTheLifecycleStatuses: every recorded status has exactly one phase, spelled by
// lifecycle.Status.Phase, and the CRD's enum lists exactly those.
func TestPhasesAreTheLifecycleStatuses(t *testing.T) {
	phases := map[lifecycle.Status]v1alpha1.Phase{
		lifecycle.Pending: v1alpha1.PhasePending, lifecycle.Running: v1alpha1.PhaseRunning,
		lifecycle.Paused: v1alpha1.PhasePaused, lifecycle.Finished: v1alpha1.PhaseFinished,
		lifecycle.Failed: v1alpha1.PhaseFailed, lifecycle.Stopped: v1alpha1.PhaseStopped,
	}
	require.Len(t, phases, len(lifecycle.All()))
	var enum []string
	for _, s := range lifecycle.All() {
		require.Equal(t, phases[s], v1alpha1.PhaseOf(s), s)
		require.Equal(t, s.Terminal(), v1alpha1.PhaseOf(s).Terminal(), s)
		back, ok := lifecycle.StatusOfPhase(string(phases[s]))
		require.True(t, ok)
		require.Equal(t, s, back)
		enum = append(enum, string(phases[s]))
	}
	src := parseTypes(t)
	require.Contains(t, src.text, "// +kubebuilder:validation:Enum="+strings.Join(enum, ";")+"\ntype Phase string")
}

// TestPhaseCommentsFollowTheLegalMoves: the "Entered from" and "Left to" lines of each phase's
// doc comment (which kubectl users read in the API reference) list exactly the moves that
// lifecycle.Legal allows, so the comments cannot drift from the table again.
func TestPhaseCommentsFollowTheLegalMoves(t *testing.T) {
	docs := parseTypes(t).phaseDocs
	require.Len(t, docs, len(lifecycle.All()))
	for _, s := range lifecycle.All() {
		doc, ok := docs["Phase"+s.Phase()]
		require.True(t, ok, "no doc comment for Phase%s", s.Phase())
		var in, out []string
		for _, other := range lifecycle.All() {
			if lifecycle.Legal(other, s, false) || lifecycle.Legal(other, s, true) {
				in = append(in, other.Phase())
			}
			if lifecycle.Legal(s, other, false) || lifecycle.Legal(s, other, true) {
				out = append(out, other.Phase())
			}
		}
		require.Equal(t, in, listAfter(t, doc, "Entered from:"), "Phase%s: Entered from", s.Phase())
		require.Equal(t, out, listAfter(t, doc, "Left to:"), "Phase%s: Left to", s.Phase())
	}
}

type typesFile struct {
	text      string
	phaseDocs map[string]string
}

func parseTypes(t *testing.T) typesFile {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "backgroundtask_types.go", nil, parser.ParseComments)
	require.NoError(t, err)
	out := typesFile{phaseDocs: map[string]string{}}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			v := spec.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); ok && id.Name == "Phase" && v.Doc != nil {
				out.phaseDocs[v.Names[0].Name] = v.Doc.Text()
			}
		}
	}
	raw, err := os.ReadFile("backgroundtask_types.go")
	require.NoError(t, err)
	out.text = string(raw)
	return out
}

// listAfter reads "label: A, B, C." from a doc comment.
func listAfter(t *testing.T, doc, label string) []string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s*([A-Za-z, ]+)\.`).FindStringSubmatch(doc)
	require.NotNil(t, m, "%q not found in %q", label, doc)
	var out []string
	for _, f := range strings.Split(m[1], ",") {
		out = append(out, strings.TrimSpace(f))
	}
	slices.SortStableFunc(out, func(a, b string) int { return order(a) - order(b) })
	return out
}

func order(phase string) int {
	s, _ := lifecycle.StatusOfPhase(phase)
	return slices.Index(lifecycle.All(), s)
}
