package main

import (
	"errors"
	"sync"
)

// cleanups is a LIFO stack of stop functions; run runs each once (on success, failure and
// Ctrl-C alike), so every process the harness started is stopped.
type cleanups struct {
	mu  sync.Mutex
	fns []func() error
}

func (c *cleanups) add(fn func() error) {
	c.mu.Lock()
	c.fns = append(c.fns, fn)
	c.mu.Unlock()
}

func (c *cleanups) run() error {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		errs = append(errs, fns[i]())
	}
	return errors.Join(errs...)
}
