// Package linkcheck is a task type for taskpilot: it checks a list of URLs the way a polite
// crawler does (one request at a time per host, at least perHostInterval apart; retries with
// backoff for network errors, 5xx and 429 with Retry-After), saves a checkpoint after every
// URL so that a paused, restarted or moved run continues where it was, and finally calls an
// optional webhook once, with an idempotency key, so that a crash between the call and the end
// of the run does not notify twice.
package linkcheck

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// TaskName is the task type's name (spec.taskName).
const TaskName = "linkcheck"

// Params are a check's parameters: spec.params of a BackgroundTask with taskName linkcheck.
type Params struct {
	// URLs to check, in order.
	URLs []string `json:"urls" jsonschema:"required,minItems=1,maxItems=10000,description=the URLs to check (http or https),example=https://example.com/"`
	// PerHostInterval is the least time between two requests to one host (default 1s).
	PerHostInterval runner.Duration `json:"perHostInterval,omitempty" jsonschema:"description=least time between two requests to the same host (default 1s),example=1s"`
	// Retries of a URL that fails with a network error, a 5xx or a 429 (default 2).
	Retries *int `json:"retries,omitempty" jsonschema:"minimum=0,maximum=10,description=retries of a URL after a network error or a 5xx/429 answer (default 2)"`
	// RequestTimeout bounds one request (default 10s).
	RequestTimeout runner.Duration `json:"requestTimeout,omitempty" jsonschema:"description=bound of one request (default 10s)"`
	// NotifyURL, if set, receives the report once (POST, JSON) with an Idempotency-Key header.
	NotifyURL string `json:"notifyURL,omitempty" jsonschema:"description=webhook that receives the report once when the check is done"`
}

// TaskName names the task type.
func (Params) TaskName() string { return TaskName }

// Validate checks what the JSON types cannot; a task with bad params fails with reason
// InvalidParams and this message.
func (p Params) Validate() error {
	if len(p.URLs) == 0 {
		return errors.New(`"urls" must list at least one URL`)
	}
	for _, raw := range p.URLs {
		if err := checkURL(raw); err != nil {
			return err
		}
	}
	if p.NotifyURL != "" {
		if err := checkURL(p.NotifyURL); err != nil {
			return fmt.Errorf(`"notifyURL": %w`, err)
		}
	}
	if p.PerHostInterval < 0 || p.RequestTimeout < 0 {
		return errors.New(`"perHostInterval" and "requestTimeout" must be positive`)
	}
	if p.Retries != nil && (*p.Retries < 0 || *p.Retries > 10) {
		return errors.New(`"retries" must be between 0 and 10`)
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", raw)
	}
	return nil
}

// withDefaults fills the optional fields.
func (p Params) withDefaults() Params {
	if p.PerHostInterval == 0 {
		p.PerHostInterval = runner.Duration(time.Second)
	}
	if p.RequestTimeout == 0 {
		p.RequestTimeout = runner.Duration(10 * time.Second)
	}
	if p.Retries == nil {
		two := 2
		p.Retries = &two
	}
	return p
}
