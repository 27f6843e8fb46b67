package webui

import "sync"

// hub tells subscribers that tasks changed. A subscriber holds at most one pending
// notification (a buffer of one), so a burst of changes costs one re-render, and a slow
// browser never blocks the informer.
type hub struct {
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

type subscription struct {
	key string // namespace/name, or "" for every task
	ch  chan struct{}
}

func newHub() *hub { return &hub{subs: map[*subscription]struct{}{}} }

// subscribe returns a channel that receives after changes of the task key ("" for any) and a
// function that ends the subscription.
func (h *hub) subscribe(key string) (<-chan struct{}, func()) {
	s := &subscription{key: key, ch: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s.ch, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}
}

// notify wakes the subscribers interested in key without waiting for any of them.
func (h *hub) notify(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.key != "" && s.key != key {
			continue
		}
		select {
		case s.ch <- struct{}{}:
		default: // already pending
		}
	}
}
