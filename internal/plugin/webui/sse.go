package webui

import (
	"fmt"
	"net/http"
	"time"
)

// events is the server-sent event stream a page listens to: "data: changed" after a change of
// the task named by ?key=namespace/name (any task without key), at most one per RefreshGap.
// A comment every 20s keeps proxies and the browser from closing an idle stream.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	changes, cancel := s.opts.Tasks.Subscribe(r.URL.Query().Get("key"))
	defer cancel()
	fmt.Fprint(w, ": watching\n\n")
	flusher.Flush()
	keepalive := time.NewTicker(20 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case <-changes:
			fmt.Fprint(w, "data: changed\n\n")
			flusher.Flush()
			// Changes during the gap collapse into the next event (the channel holds one).
			select {
			case <-r.Context().Done():
				return
			case <-time.After(s.opts.RefreshGap):
			}
			continue
		}
		flusher.Flush()
	}
}
