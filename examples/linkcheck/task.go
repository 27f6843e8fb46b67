package linkcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/taskpilot/taskpilot/runner"
)

// maxBroken bounds the broken links a checkpoint and the result keep (both must stay within
// taskpilot's 64 KiB): the count is exact, the list is the first ones.
const maxBroken = 100

// Link is one URL that did not answer 2xx or 3xx.
type Link struct {
	URL    string `json:"url"`
	Status int    `json:"status,omitempty"` // the HTTP status, 0 when there was none
	Error  string `json:"error,omitempty"`
}

// Report is the result of a check (status.result of the BackgroundTask).
type Report struct {
	Checked int    `json:"checked"`
	OK      int    `json:"ok"`
	Broken  []Link `json:"broken"`
	// BrokenCount counts every broken link (Broken keeps the first 100).
	BrokenCount int `json:"brokenCount"`
	// Notified is set once the webhook accepted the report.
	Notified bool `json:"notified,omitempty"`
}

// checkpoint is where a run is: the next URL to check and the report so far.
type checkpoint struct {
	Next   int    `json:"next"`
	Report Report `json:"report"`
}

// task is one run of a check.
type task struct {
	runner.Base
	p      Params
	client *http.Client
	// lastRequest is when each host was last asked (politeness); a resumed run starts empty,
	// which costs at most one early request per host.
	lastRequest map[string]time.Time
}

// New builds a run (the constructor runner.Register takes); client is the HTTP client to use.
func New(client *http.Client) func(Params) (runner.Task[Report], error) {
	return func(p Params) (runner.Task[Report], error) {
		return &task{p: p.withDefaults(), client: client, lastRequest: map[string]time.Time{}}, nil
	}
}

// Register adds the linkcheck task type to reg.
func Register(reg *runner.Registry, client *http.Client) error {
	return runner.Register(reg, "Checks a list of URLs politely (per-host spacing, retries) and reports the broken ones", New(client))
}

func (t *task) Run(ctx context.Context, ctl runner.Control) (Report, error) {
	var cp checkpoint
	if _, err := ctl.LoadCheckpoint(&cp); err != nil {
		return Report{}, fmt.Errorf("linkcheck: %w", err)
	}
	log := ctl.Logger()
	for cp.Next < len(t.p.URLs) {
		// The pause point: a pause, a stop, a timeout or a lost lease takes effect here, between
		// two URLs, and never in the middle of one.
		if err := ctl.Yield(ctx); err != nil {
			return Report{}, err
		}
		u := t.p.URLs[cp.Next]
		ctl.SetProgress(fmt.Sprintf("%d/%d", cp.Next, len(t.p.URLs)))
		if link, ok := t.check(ctx, ctl, u); ok {
			cp.Report.OK++
		} else {
			if ctx.Err() != nil {
				return Report{}, context.Cause(ctx) // stopped while waiting: not a broken link
			}
			cp.Report.BrokenCount++
			if len(cp.Report.Broken) < maxBroken {
				cp.Report.Broken = append(cp.Report.Broken, link)
			}
			log.V(1).Info("broken link", "url", u, "status", link.Status, "error", link.Error)
		}
		cp.Next++
		cp.Report.Checked = cp.Next
		if err := ctl.SaveCheckpoint(ctx, cp); err != nil {
			return Report{}, fmt.Errorf("linkcheck: %w", err)
		}
	}
	ctl.SetProgress(fmt.Sprintf("%d/%d", len(t.p.URLs), len(t.p.URLs)))
	if t.p.NotifyURL != "" && !cp.Report.Notified {
		if err := ctl.Yield(ctx); err != nil { // the last pause point before the side effect
			return Report{}, err
		}
		if err := t.notify(ctx, ctl.IdempotencyKey("notify"), cp.Report); err != nil {
			return Report{}, fmt.Errorf("linkcheck: notify %s: %w", t.p.NotifyURL, err)
		}
		cp.Report.Notified = true
	}
	return cp.Report, nil
}

// check asks for u, politely and with retries; ok when it answered 2xx or 3xx. Its waits are
// pause points (ctl.Sleep): a pause or a stop takes effect while it waits, never during a
// request.
func (t *task) check(ctx context.Context, ctl runner.Control, u string) (Link, bool) {
	link := Link{URL: u}
	host := hostOf(u)
	for try := 0; ; try++ {
		if err := t.politely(ctx, ctl, host); err != nil {
			link.Error = err.Error()
			return link, false
		}
		status, retryAfter, err := t.get(ctx, u)
		link.Status, link.Error = status, ""
		if err != nil {
			link.Error = err.Error()
		}
		retriable := err != nil || status >= 500 || status == http.StatusTooManyRequests
		switch {
		case err == nil && status < 400:
			return link, true
		case !retriable || try >= *t.p.Retries || ctx.Err() != nil:
			return link, false
		}
		wait := max(retryAfter, time.Duration(500<<try)*time.Millisecond)
		if err := ctl.Sleep(ctx, wait); err != nil {
			return link, false
		}
	}
}

// politely waits until host may be asked again.
func (t *task) politely(ctx context.Context, ctl runner.Control, host string) error {
	if last, ok := t.lastRequest[host]; ok {
		if err := ctl.Sleep(ctx, time.Until(last.Add(time.Duration(t.p.PerHostInterval)))); err != nil {
			return err
		}
	}
	t.lastRequest[host] = time.Now()
	return nil
}

// get asks for u and returns its status and how long a 429/503 asks to wait.
func (t *task) get(ctx context.Context, u string) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(t.p.RequestTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("User-Agent", "taskpilot-linkcheck/1")
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_ = resp.Body.Close()
	var retryAfter time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}

// notify posts the report with an idempotency key that is the same for every run of this
// attempt: a run that crashed after the webhook accepted but before its end was recorded
// posts again with the same key, and the receiver keeps the first.
func (t *task) notify(ctx context.Context, key string, r Report) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.p.NotifyURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		return errors.New(resp.Status)
	}
	return nil
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}
