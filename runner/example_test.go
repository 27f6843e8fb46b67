package runner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/runnertest"
)

// ThumbnailParams are the params of the "thumbnail" task type.
type ThumbnailParams struct {
	Image string `json:"image" jsonschema:"required,description=the image to shrink (s3://),example=s3://photos/cat.jpg"`
}

// TaskName names the task type (spec.taskName).
func (ThumbnailParams) TaskName() string { return "thumbnail" }

// ThumbnailResult is where the thumbnail went (status.result).
type ThumbnailResult struct {
	URL string `json:"url"`
}

type thumbnail struct {
	runner.Base // no-op Pre and Post
	p           ThumbnailParams
}

func (t *thumbnail) Run(ctx context.Context, ctl runner.Control) (ThumbnailResult, error) {
	if !strings.HasPrefix(t.p.Image, "s3://") {
		// No retry can mend this: the task fails at once with reason PermanentError.
		return ThumbnailResult{}, runner.Permanent(fmt.Errorf("%q is not an s3:// URL", t.p.Image))
	}
	// Waiting is a pause point too: a pause, stop or timeout ends the wait early.
	if err := ctl.Sleep(ctx, 10*time.Millisecond); err != nil {
		return ThumbnailResult{}, err
	}
	return ThumbnailResult{URL: strings.TrimSuffix(t.p.Image, ".jpg") + ".thumb.png"}, nil
}

func newThumbnail(p ThumbnailParams) (runner.Task[ThumbnailResult], error) {
	return &thumbnail{p: p}, nil
}

// Example registers a task type with a typed result; the operator publishes what the registry
// says about it (a TaskType with the params' JSON Schema).
func Example() {
	reg := runner.NewRegistry()
	runner.MustRegister(reg, "Makes a thumbnail of an image", newThumbnail)
	for _, t := range reg.Types() {
		fmt.Printf("%s: %s %v\n", t.Name, t.Description, t.Fields)
	}
	// Output:
	// thumbnail: Makes a thumbnail of an image [image]
}

// TestTheExampleRunsAndFailsForGood: the example's result is stored as JSON, and its
// permanent error ends the task Failed, reason PermanentError, in one attempt.
func TestTheExampleRunsAndFailsForGood(t *testing.T) {
	reg := runner.NewRegistry()
	runner.MustRegister(reg, "Makes a thumbnail of an image", newThumbnail)

	res := runnertest.Run(t, reg, ThumbnailParams{Image: "s3://photos/cat.jpg"})
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	require.JSONEq(t, `{"url":"s3://photos/cat.thumb.png"}`, string(res.Result))

	res = runnertest.Run(t, reg, ThumbnailParams{Image: "/tmp/cat.jpg"})
	require.Equal(t, v1alpha1.PhaseFailed, res.Phase)
	require.Equal(t, lifecycle.ReasonPermanentError, res.Reason)
	require.Contains(t, res.Message, `"/tmp/cat.jpg" is not an s3:// URL`)
}
