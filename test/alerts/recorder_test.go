package alerts_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/hack/monitoring"
	"github.com/taskpilot/taskpilot/test/harness"
)

// Time dilation: the recorder scrapes every scrapeEvery of real time and files each scrape
// virtualInterval after the previous one, so an alert's `for` of minutes is reached in seconds
// of a real outage. Counters and gauges keep their real values; only the clock is scaled.
const (
	scrapeEvery     = 500 * time.Millisecond
	virtualInterval = 15 * time.Second
)

// sample is one scraped value at a virtual time.
type sample struct {
	lbls labels.Labels
	t    time.Time
	v    float64
}

// recorder scrapes operators' /metrics as Prometheus would (each series gets the target's
// namespace and pod labels, as a ServiceMonitor adds them) and keeps every sample.
type recorder struct {
	namespace string
	start     time.Time // virtual time of the first scrape
	mu        sync.Mutex
	targets   map[string]*harness.Operator
	samples   []sample
	families  map[string]bool
	ticks     int
	stop      context.CancelFunc
	done      chan struct{}
}

func newRecorder(namespace string) *recorder {
	return &recorder{namespace: namespace, start: time.Unix(1_800_000_000, 0), targets: map[string]*harness.Operator{},
		families: map[string]bool{}, done: make(chan struct{})}
}

// watch adds an operator to the scraped targets.
func (r *recorder) watch(pod string, op *harness.Operator) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.targets[pod] = op
}

// unwatch stops scraping pod (the process is gone: its series go stale).
func (r *recorder) unwatch(pod string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.targets, pod)
}

// run scrapes every scrapeEvery until stopped.
func (r *recorder) run(ctx context.Context) {
	ctx, r.stop = context.WithCancel(ctx)
	go func() {
		defer close(r.done)
		client := &http.Client{Timeout: scrapeEvery}
		tick := time.NewTicker(scrapeEvery)
		defer tick.Stop()
		for {
			r.scrapeAll(ctx, client)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// halt stops scraping and returns the virtual time of the last scrape.
func (r *recorder) halt() time.Time {
	r.stop()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at(r.ticks - 1)
}

func (r *recorder) at(tick int) time.Time { return r.start.Add(time.Duration(tick) * virtualInterval) }

func (r *recorder) scrapeAll(ctx context.Context, client *http.Client) {
	r.mu.Lock()
	targets := make(map[string]*harness.Operator, len(r.targets))
	for k, v := range r.targets {
		targets[k] = v
	}
	at := r.at(r.ticks)
	r.ticks++
	r.mu.Unlock()
	for pod, op := range targets {
		fams, err := scrape(ctx, client, op.MetricsURL)
		if err != nil {
			continue // a process that does not answer has no samples this time, as in Prometheus
		}
		r.add(pod, at, fams)
	}
}

func scrape(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func (r *recorder) add(pod string, at time.Time, fams map[string]*dto.MetricFamily) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, mf := range fams {
		r.families[name] = true
		for _, m := range mf.GetMetric() {
			base := labels.NewBuilder(labels.EmptyLabels()).Set("namespace", r.namespace).Set("pod", pod)
			for _, lp := range m.GetLabel() {
				base.Set(lp.GetName(), lp.GetValue())
			}
			put := func(series string, v float64, extra ...string) {
				b := labels.NewBuilder(base.Labels()).Set(model.MetricNameLabel, series)
				for i := 0; i+1 < len(extra); i += 2 {
					b.Set(extra[i], extra[i+1])
				}
				r.samples = append(r.samples, sample{lbls: b.Labels(), t: at, v: v})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				put(name, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				put(name, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				put(name, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					put(name+"_bucket", float64(b.GetCumulativeCount()), "le", model.FloatString(b.GetUpperBound()).String())
				}
				put(name+"_bucket", float64(h.GetSampleCount()), "le", "+Inf")
				put(name+"_sum", h.GetSampleSum())
				put(name+"_count", float64(h.GetSampleCount()))
			case dto.MetricType_GAUGE_HISTOGRAM:
				// taskpilot exports none; nothing reads one.
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				put(name+"_sum", s.GetSampleSum())
				put(name+"_count", float64(s.GetSampleCount()))
			}
		}
	}
}

// firing is when an alert first fired in an evaluation, and for which series.
type firing struct {
	at     time.Time
	labels labels.Labels
}

// evaluate runs every alert of package monitoring over the recorded samples with Prometheus's
// rule evaluation, at every virtual scrape time (the evaluation interval is the scrape
// interval), and returns the alerts that fired.
func (r *recorder) evaluate(t *testing.T) map[string]firing {
	t.Helper()
	r.mu.Lock()
	samples, ticks := r.samples, r.ticks
	r.mu.Unlock()
	require.NotEmpty(t, samples, "nothing was scraped")
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].t.Before(samples[j].t) })
	for _, s := range samples {
		_, err := app.Append(0, s.lbls, s.t.UnixMilli(), s.v)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	engine := promql.NewEngine(promql.EngineOpts{Logger: promslog.NewNopLogger(), MaxSamples: 10_000_000,
		Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	query := rules.EngineQueryFunc(engine, st)
	fired := map[string]firing{}
	for _, a := range monitoring.Alerts() {
		expr, err := monitoring.Parser().ParseExpr(a.Expr)
		require.NoError(t, err, a.Name)
		rule := rules.NewAlertingRule(a.Name, expr, a.For, 0, labels.FromStrings("severity", a.Severity),
			labels.EmptyLabels(), labels.EmptyLabels(), "", true, promslog.NewNopLogger())
		for tick := range ticks {
			ts := r.at(tick)
			_, err := rule.Eval(context.Background(), 0, ts, query, nil, 0)
			require.NoError(t, err, "%s at %s", a.Name, ts)
			for _, al := range rule.ActiveAlerts() {
				if _, seen := fired[a.Name]; al.State == rules.StateFiring && !seen {
					fired[a.Name] = firing{at: ts, labels: al.Labels}
				}
			}
		}
	}
	return fired
}

// seen returns the metric families scraped so far.
func (r *recorder) seen() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.families))
	for k := range r.families {
		out[k] = true
	}
	return out
}

// last returns the latest value of every series of the metric families named (for a failing
// scenario's log).
func (r *recorder) last(families ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	latest := map[string]sample{}
	for _, s := range r.samples {
		if slices.Contains(families, monitoring.Family(s.lbls.Get(model.MetricNameLabel))) {
			latest[s.lbls.String()] = s
		}
	}
	var out []string
	for k, s := range latest {
		out = append(out, fmt.Sprintf("%s = %g", k, s.v))
	}
	sort.Strings(out)
	return out
}
