package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/taskpilot/taskpilot/internal/taskdb"
)

func TestScopeNeedsTargets(t *testing.T) {
	cases := []struct {
		args  []string
		scope scope
		err   string
	}{
		{nil, scope{}, "which tasks? name them, or use -l SELECTOR or --all"},
		{[]string{"a"}, scope{selector: "x=y"}, "name tasks, or use -l or --all, not both"},
		{[]string{"a"}, scope{all: true}, "name tasks, or use -l or --all, not both"},
		{[]string{"a"}, scope{allNamespaces: true}, "a task name needs one namespace: use -n instead of -A"},
		{nil, scope{selector: "==x"}, `-l "==x"`},
	}
	for _, c := range cases {
		err := c.scope.resolve(nil, c.args, true)
		require.ErrorContains(t, err, c.err, "%v %+v", c.args, c.scope)
	}
	s := scope{selector: "batch=nightly", allNamespaces: true}
	require.NoError(t, s.resolve(nil, nil, true), "-A needs no namespace lookup")
	require.Empty(t, s.namespace)
	require.True(t, s.withNamespace())
}

// TestTaskTable: `get` prints the API server's table (the CRD's printer columns, -o wide adds
// the priority ones) with LAST TRANSITION from PostgreSQL appended.
func TestTaskTable(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	row := func(ns, name, uid string, cells ...any) metav1.TableRow {
		raw, _ := json.Marshal(metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}})
		return metav1.TableRow{Cells: append([]any{name}, cells...), Object: runtime.RawExtension{Raw: raw}}
	}
	table := func() *metav1.Table {
		return &metav1.Table{
			ColumnDefinitions: []metav1.TableColumnDefinition{{Name: "Name", Type: "string"}, {Name: "Phase", Type: "string"},
				{Name: "Replica", Type: "string", Priority: 1}},
			Rows: []metav1.TableRow{row("ns", "countdown", "u1", "Paused", "op-a"), row("ns", "fresh", "u2", "", "op-b")},
		}
	}
	last := map[string]taskdb.Transition{"u1": {Seq: 3, From: "RUNNING", To: "PAUSED", Reason: "Paused", At: now.Add(-12 * time.Second)}}

	narrow := table()
	require.NoError(t, withLastTransition(narrow, last, now))
	var buf bytes.Buffer
	require.NoError(t, printTable(&buf, narrow, false, true))
	require.Equal(t, `NAMESPACE   NAME        PHASE    LAST TRANSITION
ns          countdown   Paused   RUNNING→PAUSED Paused 12s ago
ns          fresh                
`, buf.String())

	wide := table()
	require.NoError(t, withLastTransition(wide, last, now))
	buf.Reset()
	require.NoError(t, printTable(&buf, wide, true, false))
	require.Equal(t, `NAME        PHASE    REPLICA   LAST TRANSITION
countdown   Paused   op-a      RUNNING→PAUSED Paused 12s ago
fresh                op-b      
`, buf.String())
}

func TestVerbNeedsTargetsBeforeConnecting(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := NewRootCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs([]string{"pause", "--kubeconfig", "/nonexistent"})
	err := cmd.Execute()
	require.ErrorContains(t, err, "which tasks?")
	require.Empty(t, out.String())

	cmd = NewRootCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs([]string{"history", "x", "-o", "wide"})
	require.ErrorContains(t, cmd.Execute(), `-o "wide": use json or yaml`)
}

// TestHelpKeepsTheDatabasePasswordSecret: the flag's default does not show
// $DATABASE_URL, which every --help (of every subcommand) would print, password included.
func TestHelpKeepsTheDatabasePasswordSecret(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://reader:s3cret-pw@db.example:5432/taskpilot")
	for _, args := range [][]string{{"--help"}, {"history", "--help"}, {"ui", "--help"}, {"pause", "--help"}} {
		var out bytes.Buffer
		cmd := NewRootCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
		cmd.SetArgs(args)
		require.NoError(t, cmd.Execute(), "%v", args)
		require.Contains(t, out.String(), "database-url", "%v", args)
		require.NotContains(t, out.String(), "s3cret-pw", "%v", args)
	}

	o := &options{}
	require.Equal(t, "postgres://reader:s3cret-pw@db.example:5432/taskpilot", o.database(), "read when used")
	o.databaseURL = "postgres://flag"
	require.Equal(t, "postgres://flag", o.database(), "the flag wins")
}
