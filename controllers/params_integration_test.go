package controllers_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// TestParamsStayOutOfTheCache: the operator's informer cache holds every BackgroundTask, so a
// tenant's large params (up to what etcd takes) would cost the operator memory per object on
// every replica. The cache keeps large params out; a run reads them from the API server when
// it starts.
func TestParamsStayOutOfTheCache(t *testing.T) {
	h := newHarness(t)
	p := h.startOperator(operatorConfig{})
	big := `{"steps":3,"interval":"10ms","padding":"` + strings.Repeat("x", 200<<10) + `"}`
	parked := h.create("parked", "steps", big, func(b *v1alpha1.BackgroundTask) { b.Spec.State = v1alpha1.DesiredPaused })
	h.waitPhase("parked", v1alpha1.PhasePending)
	var cached v1alpha1.BackgroundTask
	require.NoError(t, p.cache.Get(h.ctx, client.ObjectKeyFromObject(parked), &cached))
	require.Equal(t, parked.UID, cached.UID)
	require.Less(t, paramsSize(&cached), 1<<10, "the cached copy holds no large params")

	// A run still gets its params, read when it starts (here 20 KiB, under the 32 KiB limit).
	medium := `{"steps":3,"interval":"10ms","padding":"` + strings.Repeat("y", 20<<10) + `"}`
	run := h.create("run", "steps", medium)
	h.waitRow(string(run.UID), lifecycle.Finished)
	done := h.waitPhase("run", v1alpha1.PhaseFinished)
	require.JSONEq(t, `{"startedAt":0,"steps":3}`, string(done.Status.Result.Raw))
	require.NoError(t, p.cache.Get(h.ctx, client.ObjectKeyFromObject(run), &cached))
	require.Less(t, paramsSize(&cached), 1<<10)

	// The oversized ones still fail with InvalidParams, read from the API server too.
	h.patchSpec("parked", `{"state":"Running"}`)
	failed := h.waitPhase("parked", v1alpha1.PhaseFailed, func(*v1alpha1.BackgroundTask) bool { return true })
	require.Contains(t, failed.Status.Message, "more than the 32768 allowed")
	require.Eventually(t, func() bool { return h.countRows("FAILED") == 1 }, waitTimeout, 50*time.Millisecond)
}

func paramsSize(bt *v1alpha1.BackgroundTask) int {
	if bt.Spec.Params == nil {
		return 0
	}
	raw, _ := json.Marshal(bt.Spec.Params)
	return len(raw)
}
