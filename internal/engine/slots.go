package engine

import (
	"container/list"
	"sync"
)

// slots is a counting semaphore with a strict FIFO queue: the runner's slots (one unit a run)
// and its memory budget (bytes) are two of them. x/sync's semaphore.Weighted is FIFO too and
// withdraws a waiter whose context is cancelled, but only from inside a blocked Acquire: the
// runner decides Running or Pending synchronously, under the run's lock, inside StartTask and
// ResumeTask (the first transition is reported from there), it says what a Pending run waits for
// (the message shows what is in use), and a queued claim is withdrawn by PauseTask or StopTask
// from another goroutine. A claim that is a value (waiter) rather than a blocked call does all
// three without a goroutine parked in Acquire per Pending run. The head of the queue is served
// first even when a smaller claim behind it would fit, so a large run is never starved by small
// ones.
type slots struct {
	mu    sync.Mutex
	max   int64
	inUse int64
	queue list.List // of *waiter, front = oldest
}

// waiter is one queued claim of n units. ch is closed when the units are handed over; from
// then on they count in inUse on the waiter's behalf.
type waiter struct {
	ch      chan struct{}
	n       int64
	granted bool
	elem    *list.Element
}

func newSlots(max int64) *slots {
	s := &slots{max: max}
	s.queue.Init()
	return s
}

// acquire takes n units at once when they are free and nobody is queued (returns nil), or
// enqueues and returns the waiter. Checking the queue keeps FIFO: a late comer cannot overtake
// queued tasks.
func (s *slots) acquire(n int64) *waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse+n <= s.max && s.queue.Len() == 0 {
		s.inUse += n
		return nil
	}
	w := &waiter{ch: make(chan struct{}), n: n}
	w.elem = s.queue.PushBack(w)
	return w
}

// release frees n units and hands them to the oldest waiters that fit, in order.
func (s *slots) release(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse -= n
	s.grantLocked()
}

// grantLocked hands free units to waiters from the front while the front one fits.
func (s *slots) grantLocked() {
	for front := s.queue.Front(); front != nil; front = s.queue.Front() {
		w := front.Value.(*waiter)
		if s.inUse+w.n > s.max {
			return
		}
		s.queue.Remove(front)
		s.inUse += w.n
		w.granted = true
		close(w.ch)
	}
}

// withdraw cancels a claim. If the units were already handed over they are released again, so
// callers need not care which side of the race they lost.
func (s *slots) withdraw(w *waiter) {
	s.mu.Lock()
	if !w.granted {
		s.queue.Remove(w.elem)
		s.grantLocked() // the withdrawn claim may have been blocking smaller ones behind it
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.release(w.n)
}

func (s *slots) stats() (inUse int64, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse, s.queue.Len()
}
