package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
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

func TestTaskTable(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tasks := []v1alpha1.BackgroundTask{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "countdown", UID: "u1", CreationTimestamp: metav1.NewTime(now.Add(-90 * time.Second))},
		Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "countdown", State: v1alpha1.DesiredPaused},
		Status: v1alpha1.BackgroundTaskStatus{Phase: v1alpha1.PhasePaused, Attempt: 1, Progress: "3/10",
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionFalse}}},
	}, {
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "fresh", UID: "u2", CreationTimestamp: metav1.NewTime(now)},
		Spec:       v1alpha1.BackgroundTaskSpec{TaskName: "sleep", State: v1alpha1.DesiredRunning},
	}}
	last := map[string]taskdb.Transition{"u1": {Seq: 3, From: "RUNNING", To: "PAUSED", Reason: "Paused", At: now.Add(-12 * time.Second)}}
	var buf bytes.Buffer
	require.NoError(t, printTaskTable(&buf, tasks, last, true, now))
	require.Equal(t, `NAMESPACE   NAME        TASK        DESIRED   PHASE    PROGRESS   ATTEMPT   STALLED   AGE   LAST TRANSITION
ns          countdown   countdown   Paused    Paused   3/10       1         False     90s   RUNNING→PAUSED Paused 12s ago
ns          fresh       sleep       Running                       0                   0s    
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
