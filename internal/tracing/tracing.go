// Package tracing sets up the operator process's OpenTelemetry tracer provider: spans exported
// over OTLP when an endpoint is configured, nothing otherwise. It honours the standard OTEL_*
// variables (endpoint, protocol, headers, TLS, timeout: the exporter's; OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*: the SDK's; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES:
// the resource's; OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off).
//
// The provider is passed down explicitly (operator.Options.TracerProvider); nothing here sets
// OpenTelemetry's global provider, so two operators in one program keep theirs apart.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is what the process knows about itself; the rest comes from OTEL_* variables.
type Config struct {
	// Endpoint is the OTLP endpoint URL (--otlp-endpoint), e.g. http://collector:4317; it
	// overrides OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. Empty: those variables decide.
	Endpoint string
	// Identity, Deployment and Version describe the replica (resource attributes
	// service.instance.id, taskpilot.deployment, service.version).
	Identity, Deployment, Version string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Provider is a tracer provider and how to flush and stop it.
type Provider struct {
	// TracerProvider is nil when tracing is off: nothing pays for spans nobody exports.
	TracerProvider trace.TracerProvider
	// Shutdown exports what is buffered and stops the exporter; a nil-safe no-op when
	// tracing is off.
	Shutdown func(context.Context) error
}

// Enabled reports whether c turns tracing on: an endpoint is configured (flag or OTEL_*), and
// neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise.
func (c Config) Enabled() bool {
	env := c.env()
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(env("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return c.Endpoint != "" || env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func (c Config) env() func(string) string {
	if c.Getenv != nil {
		return c.Getenv
	}
	return os.Getenv
}

// DefaultSampler is the sampler without OTEL_TRACES_SAMPLER: follow the creator's decision (a
// traceparent's sampled flag), sample every trace that starts here. Tasks are few and long
// compared with requests; set OTEL_TRACES_SAMPLER=parentbased_traceidratio and
// OTEL_TRACES_SAMPLER_ARG=0.1 to keep one in ten of the traces that start here.
func DefaultSampler() sdktrace.Sampler { return sdktrace.ParentBased(sdktrace.AlwaysSample()) }

// New returns the provider c asks for: none when tracing is off (Enabled false),
// else an SDK provider batching spans to the OTLP exporter (gRPC, or HTTP when
// OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL is http/protobuf).
func New(ctx context.Context, c Config) (Provider, error) {
	if !c.Enabled() {
		return Provider{Shutdown: func(context.Context) error { return nil }}, nil
	}
	exp, err := c.exporter(ctx)
	if err != nil {
		return Provider{}, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		// Defaults first: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them.
		resource.WithAttributes(
			attribute.String("service.name", "taskpilot"),
			attribute.String("service.version", c.Version),
			attribute.String("service.instance.id", c.Identity),
			attribute.String("taskpilot.deployment", c.Deployment),
		),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return Provider{}, fmt.Errorf("tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if c.env()("OTEL_TRACES_SAMPLER") == "" {
		opts = append(opts, sdktrace.WithSampler(DefaultSampler()))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return Provider{TracerProvider: tp, Shutdown: tp.Shutdown}, nil
}

func (c Config) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	env := c.env()
	protocol := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "", "grpc":
		var opts []otlptracegrpc.Option
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(c.Endpoint))
		}
		return otlptracegrpc.New(ctx, opts...)
	case "http/protobuf":
		var opts []otlptracehttp.Option
		if c.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q is not supported (grpc or http/protobuf)", protocol)
}

// ShutdownTimeout bounds the final export at exit.
const ShutdownTimeout = 5 * time.Second
