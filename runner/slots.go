package runner

import (
	"container/list"
	"sync"
)

// slots is a counting semaphore with a strict FIFO queue. The stdlib and
// x/sync offerings either are not FIFO or cannot withdraw a waiter from the
// outside, and both are needed: Pending tasks must start in arrival order,
// and PauseTask/StopTask must pull a Pending task out of the queue.
type slots struct {
	mu    sync.Mutex
	max   int
	inUse int
	queue list.List // of *waiter, front = oldest
}

// waiter is one queued claim. ch is closed when the slot is handed over;
// from then on the slot counts in inUse on the waiter's behalf.
type waiter struct {
	ch      chan struct{}
	granted bool
	elem    *list.Element
}

func newSlots(max int) *slots {
	s := &slots{max: max}
	s.queue.Init()
	return s
}

// acquire takes a slot at once when one is free and nobody is queued
// (returns nil), or enqueues and returns the waiter. Checking the queue keeps
// FIFO: a late comer cannot overtake queued tasks.
func (s *slots) acquire() *waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse < s.max && s.queue.Len() == 0 {
		s.inUse++
		return nil
	}
	w := &waiter{ch: make(chan struct{})}
	w.elem = s.queue.PushBack(w)
	return w
}

// release frees one slot, handing it straight to the oldest waiter if any.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if front := s.queue.Front(); front != nil {
		w := s.queue.Remove(front).(*waiter)
		w.granted = true
		close(w.ch)
		return
	}
	s.inUse--
}

// withdraw cancels a claim. If the slot was already handed over it is
// released again, so callers need not care which side of the race they lost.
func (s *slots) withdraw(w *waiter) {
	s.mu.Lock()
	if !w.granted {
		s.queue.Remove(w.elem)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.release()
}

func (s *slots) stats() (inUse, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse, s.queue.Len()
}
