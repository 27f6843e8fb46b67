package webui

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// fakeTasks is a TaskSource over a fixed list, with a real hub.
type fakeTasks struct {
	tasks []*v1alpha1.BackgroundTask
	hub   *hub
}

func (f *fakeTasks) List() []*v1alpha1.BackgroundTask { return f.tasks }
func (f *fakeTasks) Get(ns, name string) (*v1alpha1.BackgroundTask, bool) {
	for _, t := range f.tasks {
		if t.Namespace == ns && t.Name == name {
			return t, true
		}
	}
	return nil, false
}
func (f *fakeTasks) Subscribe(key string) (<-chan struct{}, func()) { return f.hub.subscribe(key) }

type fakeHistory struct {
	trs    map[string][]taskdb.Transition
	counts []taskdb.PhaseCount
	err    error
	ns     string
}

func (f *fakeHistory) History(_ context.Context, uid string) ([]taskdb.Transition, error) {
	return f.trs[uid], f.err
}

func (f *fakeHistory) PhaseCounts(_ context.Context, ns string, _, _ time.Time, _ time.Duration) ([]taskdb.PhaseCount, error) {
	f.ns = ns
	return f.counts, f.err
}

type fakeEvents []corev1.Event

func (f fakeEvents) TaskEvents(context.Context, *v1alpha1.BackgroundTask) ([]corev1.Event, error) {
	return f, nil
}

func bgt(ns, name, taskName string, phase v1alpha1.Phase, attempt int32, lbls map[string]string) *v1alpha1.BackgroundTask {
	return &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: lbls,
			CreationTimestamp: metav1.NewTime(t0.Add(-10 * time.Minute))},
		Spec:   v1alpha1.BackgroundTaskSpec{TaskName: taskName, State: v1alpha1.DesiredRunning},
		Status: v1alpha1.BackgroundTaskStatus{Phase: phase, Attempt: attempt, Progress: "3/10"},
	}
}

// restartHistory is a task that ran, was restarted and runs its second attempt.
func restartHistory() []taskdb.Transition {
	return []taskdb.Transition{
		{Seq: 1, To: "PENDING", Attempt: 0, Reason: "Created", At: t0.Add(-5 * time.Minute)},
		{Seq: 2, From: "PENDING", To: "RUNNING", Attempt: 1, Reason: "Started", At: t0.Add(-5*time.Minute + time.Second)},
		{Seq: 3, From: "RUNNING", To: "PAUSED", Attempt: 1, Reason: "Paused", At: t0.Add(-4 * time.Minute)},
		{Seq: 4, From: "PAUSED", To: "RUNNING", Attempt: 1, Reason: "Resumed", At: t0.Add(-3 * time.Minute)},
		{Seq: 5, From: "RUNNING", To: "STOPPED", Attempt: 1, Reason: "Stopped", At: t0.Add(-2 * time.Minute)},
		{Seq: 6, From: "STOPPED", To: "RUNNING", Attempt: 2, Reason: "Started", At: t0.Add(-2*time.Minute + time.Second)},
	}
}

type fixture struct {
	tasks   *fakeTasks
	history *fakeHistory
	srv     *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	countdown := bgt("default", "countdown", "countdown", v1alpha1.PhaseRunning, 2, map[string]string{"batch": "a"})
	countdown.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "AsDesired",
		Message: "Running as desired", LastTransitionTime: metav1.NewTime(t0.Add(-time.Minute))}}
	f := &fixture{
		tasks: &fakeTasks{hub: newHub(), tasks: []*v1alpha1.BackgroundTask{
			countdown,
			bgt("default", "sum", "checksum", v1alpha1.PhaseFinished, 1, map[string]string{"batch": "b"}),
			bgt("other", "nap", "sleep", v1alpha1.PhasePaused, 1, nil),
		}},
		history: &fakeHistory{trs: map[string][]taskdb.Transition{"uid-countdown": restartHistory()},
			counts: []taskdb.PhaseCount{{At: t0, Status: "RUNNING", Tasks: 2}, {At: t0, Status: "PAUSED", Tasks: 1}}},
	}
	events := fakeEvents{
		{Type: "Normal", Reason: "Started", Message: "Pending → Running (attempt 1)", EventTime: metav1.NewMicroTime(t0.Add(-5 * time.Minute))},
		{Type: "Warning", Reason: "Stopped", Message: "Running → Stopped (attempt 1)", EventTime: metav1.NewMicroTime(t0.Add(-2 * time.Minute))},
	}
	queues := fakeQueues{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reports"}, Spec: v1alpha1.TaskQueueSpec{Concurrency: 5},
		Status: v1alpha1.TaskQueueStatus{Running: 5, Pending: 37, OldestPendingSince: &metav1.Time{Time: t0.Add(-3 * time.Minute)},
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionPaused, Status: metav1.ConditionTrue}}}}}
	s, err := New(Options{Tasks: f.tasks, History: f.history, Events: events, Queues: queues, Scope: "all namespaces",
		Now: func() time.Time { return t0 }, RefreshGap: time.Millisecond})
	require.NoError(t, err)
	f.srv = httptest.NewServer(s.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// rowNames are the task names of the list's rows, in order.
func rowNames(html string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<tr data-name="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestListPage(t *testing.T) {
	f := newFixture(t)
	code, html := f.get(t, "/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []string{"countdown", "sum", "nap"}, rowNames(html))
	require.Contains(t, html, `<span class="badge st-running">Running</span>`)
	require.Contains(t, html, `data-live="/?fragment=rows"`)
	require.Contains(t, html, `<svg class="phasechart"`, "the phase chart is drawn")
	require.Contains(t, html, `class="st-running"`)
	require.Empty(t, f.history.ns, "all namespaces: the chart counts every namespace")
	require.Contains(t, html, `<tr data-queue="reports"><td>default</td><td>reports</td><td>5</td><td class="running">5</td><td class="pending">37</td><td>0</td><td class="state">paused</td><td>3m</td></tr>`,
		"the queues, with what their status holds")

	for query, want := range map[string][]string{
		"?phase=Paused":             {"nap"},
		"?type=checksum":            {"sum"},
		"?l=batch%3Da":              {"countdown"},
		"?l=batch":                  {"countdown", "sum"},
		"?ns=other":                 {"nap"},
		"?ns=default&phase=Running": {"countdown"},
	} {
		_, html := f.get(t, "/"+query)
		require.Equal(t, want, rowNames(html), query)
	}
	f.get(t, "/?ns=other")
	require.Equal(t, "other", f.history.ns, "the chart follows the namespace filter")

	_, html = f.get(t, "/?l=%3D%3Dbad")
	require.Contains(t, html, "label selector:")
	require.Empty(t, rowNames(html))

	code, frag := f.get(t, "/?phase=Running&fragment=rows")
	require.Equal(t, http.StatusOK, code)
	require.True(t, strings.HasPrefix(frag, `<tr data-name="countdown"`), "a fragment is the rows only:\n%s", frag)
	require.Contains(t, frag, "1 of 3 tasks")
}

func TestListPageWithoutDatabase(t *testing.T) {
	s, err := New(Options{Tasks: &fakeTasks{hub: newHub()}, Events: fakeEvents{}, HistoryNote: "No DATABASE_URL."})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "No DATABASE_URL.")
	require.Contains(t, rec.Body.String(), "No tasks match.")
}

func TestTaskPage(t *testing.T) {
	f := newFixture(t)
	code, html := f.get(t, "/tasks/default/countdown")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, html, `data-live="/tasks/default/countdown?fragment=main"`)
	require.Contains(t, html, `data-events="/events?key=default%2Fcountdown"`)
	// Two attempts: two lanes.
	lanes := regexp.MustCompile(`<g class="lane" data-attempt="(\d+)"`).FindAllStringSubmatch(html, -1)
	require.Len(t, lanes, 2)
	require.Equal(t, "1", lanes[0][1])
	require.Equal(t, "2", lanes[1][1])
	require.Contains(t, html, "AsDesired")
	// Events newest first.
	require.Less(t, strings.Index(html, "Running → Stopped (attempt 1)"), strings.Index(html, "Pending → Running (attempt 1)"))
	require.Contains(t, html, `<tr class="ev-warning">`)

	code, html = f.get(t, "/tasks/default/gone")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, html, "kubectl taskpilot history -n default gone")

	f.history.err = errors.New("connection refused")
	_, html = f.get(t, "/tasks/default/countdown?fragment=main")
	require.Contains(t, html, "Cannot read the history: connection refused")
	require.NotContains(t, html, "<html", "a fragment is not a page")
}

func TestEventsStreamTellsAboutChanges(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/events?key=default%2Fcountdown")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	lines := bufio.NewReader(resp.Body)
	line, err := lines.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, ": watching\n", line, "the stream is open (and subscribed) before any change")

	f.tasks.hub.notify("other/nap") // not the task this page shows
	f.tasks.hub.notify("default/countdown")
	for {
		line, err = lines.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "data:") {
			break
		}
	}
	require.Equal(t, "data: changed\n", line)
}

func TestLocalOnly(t *testing.T) {
	s, err := New(Options{Tasks: &fakeTasks{hub: newHub()}, Events: fakeEvents{}})
	require.NoError(t, err)
	for host, want := range map[string]int{
		"127.0.0.1:8080":   http.StatusOK,
		"localhost:8080":   http.StatusOK,
		"[::1]:8080":       http.StatusOK,
		"evil.example":     http.StatusForbidden,
		"192.168.1.2:8080": http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		require.Equal(t, want, rec.Code, host)
	}
}

// TestSameOriginOnly: a page on another site that the user visits must not read the view (which
// runs with the user's credentials) through their browser: a request the browser marks
// cross-site, or that carries a foreign Origin, is refused.
func TestSameOriginOnly(t *testing.T) {
	s, err := New(Options{Tasks: &fakeTasks{hub: newHub()}, Events: fakeEvents{}})
	require.NoError(t, err)
	cases := []struct {
		name         string
		site, origin string
		want         int
	}{
		{"typed in the address bar", "none", "", http.StatusOK},
		{"the view's own pages and scripts", "same-origin", "http://127.0.0.1:8080", http.StatusOK},
		{"curl, no browser headers", "", "", http.StatusOK},
		{"a link from another site", "cross-site", "", http.StatusForbidden},
		{"a fetch from another site", "cross-site", "https://evil.example", http.StatusForbidden},
		{"a sibling port on localhost", "same-site", "http://127.0.0.1:9999", http.StatusForbidden},
		{"an old browser, foreign Origin", "", "https://evil.example", http.StatusForbidden},
		{"an opaque origin", "", "null", http.StatusForbidden},
	}
	for _, path := range []string{"/", "/events", "/tasks/ns/a"} {
		for _, c := range cases {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Host = "127.0.0.1:8080"
			if c.site != "" {
				req.Header.Set("Sec-Fetch-Site", c.site)
			}
			if c.origin != "" {
				req.Header.Set("Origin", c.origin)
			}
			rec := httptest.NewRecorder()
			ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond) // /events streams
			s.Handler().ServeHTTP(rec, req.WithContext(ctx))
			cancel()
			if c.want == http.StatusOK {
				require.NotEqual(t, http.StatusForbidden, rec.Code, "%s %s", path, c.name)
			} else {
				require.Equal(t, c.want, rec.Code, "%s %s", path, c.name)
			}
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "localhost:8080"
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	require.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"), "no framing by other sites")
}

func TestBuildTimeline(t *testing.T) {
	tl := buildTimeline(restartHistory(), t0)
	require.Len(t, tl.Lanes, 2)
	first, second := tl.Lanes[0], tl.Lanes[1]
	require.Equal(t, 1, first.Attempt, "waiting before the first run is drawn on attempt 1")
	require.Equal(t, []string{"PENDING", "RUNNING", "PAUSED", "RUNNING", "STOPPED"}, statuses(first))
	require.Equal(t, []string{"RUNNING"}, statuses(second))
	require.True(t, second.Segments[0].Current)
	require.Greater(t, second.Y, first.Y)
	// Bars follow each other without gaps, and the running attempt reaches toward now.
	for i := 1; i < len(first.Segments); i++ {
		prev := first.Segments[i-1]
		require.InDelta(t, prev.X+prev.W, first.Segments[i].X, 3)
	}
	require.Greater(t, second.Segments[0].X+second.Segments[0].W, tlWidth*3/4)

	// A finished task ends with a mark, not a bar to now.
	done := append(restartHistory(), taskdb.Transition{Seq: 7, From: "RUNNING", To: "FINISHED", Attempt: 2, At: t0.Add(-time.Minute)})
	tl = buildTimeline(done, t0.Add(time.Hour))
	last := tl.Lanes[1].Segments[1]
	require.Equal(t, "FINISHED", last.Status)
	require.Equal(t, tlMinBarW, last.W)

	require.True(t, buildTimeline(nil, t0).Empty)
}

func statuses(l Lane) []string {
	var out []string
	for _, s := range l.Segments {
		out = append(out, s.Status)
	}
	return out
}

func TestBuildPhaseChart(t *testing.T) {
	counts := []taskdb.PhaseCount{
		{At: t0, Status: "RUNNING", Tasks: 3},
		{At: t0, Status: "PAUSED", Tasks: 1},
		{At: t0.Add(time.Minute), Status: "FINISHED", Tasks: 2},
	}
	pc := buildPhaseChart(counts, t0, t0.Add(2*time.Minute), time.Minute)
	require.Equal(t, 4, pc.Max)
	require.Len(t, pc.Bars, 3)
	first := pc.Bars[0]
	require.Len(t, first.Boxes, 2)
	require.Equal(t, "RUNNING", first.Boxes[0].Status, "running is stacked at the bottom")
	require.Equal(t, pcHeight, first.Boxes[0].Y+first.Boxes[0].H)
	require.Equal(t, first.Boxes[0].Y, first.Boxes[1].Y+first.Boxes[1].H, "boxes stack without gaps")
	require.Equal(t, pcHeight, first.Boxes[0].H+first.Boxes[1].H, "the tallest bar fills the chart")
	require.Empty(t, pc.Bars[2].Boxes)
	require.True(t, buildPhaseChart(nil, t0, t0.Add(time.Minute), time.Minute).Empty)
}

// fakeQueues are the TaskQueues of the fixture.
type fakeQueues []v1alpha1.TaskQueue

func (f fakeQueues) TaskQueues(_ context.Context, namespace string) ([]v1alpha1.TaskQueue, error) {
	var out []v1alpha1.TaskQueue
	for _, q := range f {
		if namespace == "" || q.Namespace == namespace {
			out = append(out, q)
		}
	}
	return out, nil
}
