package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

//go:embed templates/*.html static/*
var assets embed.FS

// History is what the pages read from PostgreSQL (*taskdb.DB).
type History interface {
	History(ctx context.Context, uid string) ([]taskdb.Transition, error)
	PhaseCounts(ctx context.Context, namespace string, from, to time.Time, step time.Duration) ([]taskdb.PhaseCount, error)
}

// Events lists the Events about a task.
type Events interface {
	TaskEvents(ctx context.Context, t *v1alpha1.BackgroundTask) ([]corev1.Event, error)
}

// Queues lists the TaskQueues of a namespace ("" : every namespace).
type Queues interface {
	TaskQueues(ctx context.Context, namespace string) ([]v1alpha1.TaskQueue, error)
}

// Options are the server's data sources.
type Options struct {
	Tasks TaskSource
	// Queues lists the TaskQueues shown above the tasks (nil: none shown).
	Queues Queues
	// History is nil without a database; pages then say so instead of charts.
	History History
	// HistoryNote explains a nil History ("no DATABASE_URL").
	HistoryNote string
	Events      Events
	// Scope describes what the view covers, e.g. "namespace default" or "all namespaces".
	Scope string
	// Namespace is the namespace the view covers ("" for all); it limits the phase chart.
	Namespace string
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// RefreshGap is the least time between two live updates of one page (default 300ms).
	RefreshGap time.Duration
}

// Server renders the pages.
type Server struct {
	opts  Options
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New parses the embedded templates and sets up the routes.
func New(opts Options) (*Server, error) {
	if opts.Tasks == nil || opts.Events == nil {
		return nil, errors.New("webui: Tasks and Events are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RefreshGap <= 0 {
		opts.RefreshGap = 300 * time.Millisecond
	}
	s := &Server{opts: opts, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	funcs := template.FuncMap{
		"lower":    strings.ToLower,
		"statuses": statusOrder,
		"clock":    func(t time.Time) string { return t.Local().Format("15:04:05.000") },
		"axisY":    func(lanes int) int { return lanes*tlLaneH + 15 },
	}
	for _, page := range []string{"list", "task"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("webui: parse %s template: %w", page, err)
		}
		s.pages[page] = t
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("webui: static files: %w", err)
	}
	s.mux.HandleFunc("GET /{$}", s.listPage)
	s.mux.HandleFunc("GET /tasks/{namespace}/{name}", s.taskPage)
	s.mux.HandleFunc("GET /events", s.events)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	return s, nil
}

// Handler serves the pages to local clients (see localOnly) and same-origin requests (see
// sameOriginOnly) only.
func (s *Server) Handler() http.Handler { return localOnly(sameOriginOnly(s.mux)) }

// sameOriginOnly refuses what a page on another site makes the user's browser ask: the view
// shows what the user's credentials can read, and another site (or another port on localhost)
// must not load it, embed it or stream its events. Browsers mark such requests with
// Sec-Fetch-Site (cross-site, same-site) or, older ones, with a foreign Origin; curl and a
// typed-in address send neither ("none").
func sameOriginOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site := r.Header.Get("Sec-Fetch-Site")
		sameOrigin := site == "" || site == "same-origin" || site == "none"
		if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			sameOrigin = sameOrigin && err == nil && u.Host == r.Host
		}
		if !sameOrigin {
			http.Error(w, "taskpilot ui answers its own pages only, not other sites", http.StatusForbidden)
			return
		}
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

// localOnly refuses requests whose Host is not a loopback name: the view carries the user's
// credentials, and a web page elsewhere must not reach it through DNS rebinding.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "taskpilot ui answers on localhost only", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// render writes template name of page (the whole layout, or one fragment).
func (s *Server) render(w http.ResponseWriter, page, name string, data any) {
	var b strings.Builder
	if err := s.pages[page].ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = fmt.Fprint(w, b.String())
}

// age is kubectl's AGE format.
func (s *Server) age(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return duration.HumanDuration(s.opts.Now().Sub(t))
}

// dbContext bounds one page's database and API reads, so a stuck backend shows as an error
// on the page instead of a hanging browser.
func dbContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
