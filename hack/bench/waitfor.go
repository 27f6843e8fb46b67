package main

import (
	"context"
	"fmt"
	"time"
)

// waitFor polls cond every 200 ms, printing its progress text, until it reports done.
func waitFor(ctx context.Context, label string, timeout time.Duration, cond func() (bool, string, error)) error {
	start := time.Now()
	for {
		done, text, err := cond()
		if err != nil {
			return err
		}
		progressf("[%s] %s: %s", label, time.Since(start).Truncate(time.Second), text)
		if done {
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("%s: not done after %v: %s", label, timeout, text)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
