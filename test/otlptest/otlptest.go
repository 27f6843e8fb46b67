// Package otlptest runs a real OpenTelemetry Collector OTLP receiver (gRPC) in a test process,
// so tests assert on the spans an operator process exported, as a tracing backend gets them.
package otlptest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/taskpilot/taskpilot/test/freeport"
)

// Receiver is a running OTLP gRPC receiver.
type Receiver struct {
	// Endpoint is its URL, for OTEL_EXPORTER_OTLP_ENDPOINT (plain gRPC on loopback).
	Endpoint string
	sink     *consumertest.TracesSink
}

// Start starts a receiver on a free loopback port; it stops at the end of the test.
func Start(t testing.TB) *Receiver {
	t.Helper()
	port, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = addr
	cfg.Protocols.HTTP = configoptional.None[otlpreceiver.HTTPConfig]() // traces come over gRPC only
	sink := new(consumertest.TracesSink)
	rcv, err := f.CreateTraces(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		t.Fatalf("create the OTLP receiver: %v", err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatalf("start the OTLP receiver on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = rcv.Shutdown(context.Background()) })
	return &Receiver{Endpoint: "http://" + addr, sink: sink}
}

// Span is one received span with its resource's attributes.
type Span struct {
	ptrace.Span
	Resource pcommon.Map
}

// Attr returns a span attribute as a string ("" when absent).
func (s Span) Attr(key string) string {
	v, ok := s.Attributes().Get(key)
	if !ok {
		return ""
	}
	return v.AsString()
}

// ResourceAttr returns a resource attribute as a string ("" when absent).
func (s Span) ResourceAttr(key string) string {
	v, ok := s.Resource.Get(key)
	if !ok {
		return ""
	}
	return v.AsString()
}

// EventNames lists the span's events in order.
func (s Span) EventNames() []string {
	var out []string
	for i := range s.Events().Len() {
		out = append(out, s.Events().At(i).Name())
	}
	return out
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	var out []Span
	for _, td := range r.sink.AllTraces() {
		for i := range td.ResourceSpans().Len() {
			rs := td.ResourceSpans().At(i)
			for j := range rs.ScopeSpans().Len() {
				ss := rs.ScopeSpans().At(j)
				for k := range ss.Spans().Len() {
					out = append(out, Span{Span: ss.Spans().At(k), Resource: rs.Resource().Attributes()})
				}
			}
		}
	}
	return out
}

// WaitFor waits until match holds for some received span and returns it.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, match func(Span) bool) Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, s := range r.Spans() {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range r.Spans() {
				names = append(names, s.Name())
			}
			t.Fatalf("no span %s within %s; received %v", what, timeout, names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
