package linkcheck_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/examples/linkcheck"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/runner/runnertest"
)

// site is a web server with good, missing and flaky pages that remembers every request.
type site struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
	keys     []string // Idempotency-Key of the notifications
	flaky    int
}

func newSite(t *testing.T) *site {
	s := &site{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.Path)
		if r.URL.Path == "/notify" {
			s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
		}
		flaky := r.URL.Path == "/flaky" && s.flaky < 2
		if flaky {
			s.flaky++
		}
		s.mu.Unlock()
		switch {
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		case flaky:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *site) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.requests {
		if p == path {
			n++
		}
	}
	return n
}

func registry(t *testing.T) *runner.Registry {
	reg := runner.NewRegistry()
	require.NoError(t, linkcheck.Register(reg, &http.Client{}))
	return reg
}

func TestACheckReportsBrokenLinksAndRetriesFlakyOnes(t *testing.T) {
	s := newSite(t)
	res := runnertest.Run(t, registry(t), linkcheck.Params{
		URLs:            []string{s.URL + "/", s.URL + "/missing", s.URL + "/flaky", s.URL + "/about"},
		PerHostInterval: runner.Duration(20 * time.Millisecond),
		NotifyURL:       s.URL + "/notify",
	})
	require.Equal(t, v1alpha1.PhaseFinished, res.Phase, res.Message)
	var report linkcheck.Report
	require.NoError(t, res.DecodeResult(&report))
	require.Equal(t, 4, report.Checked)
	require.Equal(t, 3, report.OK)
	require.Equal(t, []linkcheck.Link{{URL: s.URL + "/missing", Status: 404}}, report.Broken)
	require.True(t, report.Notified)
	require.Equal(t, 3, s.count("/flaky"), "two 503s, then the retry that worked")
	require.Len(t, res.Checkpoints, 4, "a checkpoint after every URL")

	s.mu.Lock()
	defer s.mu.Unlock()
	require.Equal(t, []string{runner.IdempotencyKey("runnertest", 1, "notify")}, s.keys, "notified once, with the attempt's key")
}

func TestACheckPausesAndResumesFromItsCheckpoint(t *testing.T) {
	s := newSite(t)
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("%s/page/%d", s.URL, i))
	}
	p := linkcheck.Params{URLs: urls, PerHostInterval: runner.Duration(5 * time.Millisecond)}
	task := runnertest.Start(t, registry(t), p)
	task.WaitForCheckpoints(3)
	task.Pause()
	paused := task.WaitFor(v1alpha1.PhasePaused)
	task.Resume()
	done := task.Wait()
	require.Equal(t, v1alpha1.PhaseFinished, done.Phase, done.Message)
	require.Equal(t, []v1alpha1.Phase{v1alpha1.PhaseRunning, v1alpha1.PhasePaused, v1alpha1.PhaseRunning, v1alpha1.PhaseFinished}, done.Phases())
	require.Len(t, s.requests, 20, "the paused run continued where it was: every page once")

	// A new owner resumes the attempt from the last checkpoint it finds in the row.
	from := paused.Checkpoints[len(paused.Checkpoints)-1]
	before := len(s.requests)
	resumed := runnertest.Run(t, registry(t), p, runnertest.WithCheckpoint(from))
	require.Equal(t, v1alpha1.PhaseFinished, resumed.Phase)
	var report linkcheck.Report
	require.NoError(t, resumed.DecodeResult(&report))
	require.Equal(t, 20, report.Checked)
	require.Equal(t, 20-len(paused.Checkpoints), len(s.requests)-before, "only the pages after the checkpoint are asked again")
}

func TestBadParamsAreRefused(t *testing.T) {
	reg := registry(t)
	for params, want := range map[string]string{
		`{"urls":[]}`:                                   `"urls" must list at least one URL`,
		`{"urls":["ftp://x/"]}`:                         `"ftp://x/" is not an http or https URL`,
		`{"urls":["https://x/"],"retries":11}`:          `"retries" must be between 0 and 10`,
		`{"urls":["https://x/"],"perHostInterval":"x"}`: `duration "x"`,
		`{"urls":["https://x/"],"notify":"https://y/"}`: `unknown field "notify"`,
	} {
		_, err := reg.Build(linkcheck.TaskName, []byte(params))
		require.ErrorIs(t, err, runner.ErrInvalidParams, params)
		require.ErrorContains(t, err, want, params)
	}
}
