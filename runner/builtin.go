package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// RegisterBuiltins registers the production task types: sleep, countdown,
// checksum and noop.
func RegisterBuiltins(r *Registry) error {
	blocks := &blockPool{}
	for name, f := range map[string]Factory{
		"sleep":     NewSleepTask,
		"countdown": NewCountdownTask,
		"checksum":  blocks.checksumFactory,
		"noop":      NewNoopTask,
	} {
		if err := r.Register(name, f); err != nil {
			return fmt.Errorf("register builtins: %w", err)
		}
	}
	return nil
}

// decodeParams decodes params strictly: unknown fields and trailing data are
// errors, because a typo in a CR ("intervall") must not silently fall back
// to a default. Empty params decode as {}.
func decodeParams(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode params: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decode params: unexpected data after the JSON object")
	}
	return nil
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("500ms", "1m30s"), the form users write in a CR.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts a duration string such as "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"500ms\" or \"2m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// sleepCtx sleeps d unless ctx is cancelled first; then it returns the
// cancellation cause so tasks propagate ErrStopped & co unchanged.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
