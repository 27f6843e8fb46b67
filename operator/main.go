package operator

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/taskpilot/taskpilot/internal/tracing"
	"github.com/taskpilot/taskpilot/internal/version"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/store"
)

// Register adds task types to an operator's registry: runner.Register for each typed task
// type (builtin.Register adds taskpilot's own).
type Register func(*runner.Registry) error

// Run is a whole operator's main function: it runs Main with the command-line arguments until
// SIGTERM or SIGINT, prints an error on one line, and returns the exit code.
//
//	func main() { os.Exit(operator.Run(register)) }
func Run(register Register) int {
	err := Main(ctrl.SetupSignalHandler(), os.Args[1:], register)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0 // -h printed the flags
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %s\n", filepath.Base(os.Args[0]), OneLine(err))
		return 1
	}
	return 0
}

// Main runs a complete operator with the command-line arguments args (without the program
// name) until ctx is done: flags, logging, PostgreSQL (migrated at start-up), a manager with
// metrics, probes and leader election, and the operator with register's task types. Every
// taskpilot binary, this repository's main.go included, is this call.
//
// With "migrate" as its first argument it migrates the schema (with --migrate-database-url, or
// --database-url) and exits: a Job or an init container runs it with the owner's credentials,
// so the operator itself needs only the runtime role's. With "version" it prints the binary's
// version (-o json: as JSON) and exits.
func Main(ctx context.Context, args []string, register Register) error {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return migrateOnly(ctx, args[1:])
		case "version":
			return printVersion(os.Stdout, args[1:])
		}
	}
	fs := flag.NewFlagSet("taskpilot", flag.ContinueOnError)
	o, p, zopts, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	if err := o.Complete(); err != nil { // the replica's identity names its spans' resource
		return err
	}
	tracer, err := tracing.New(ctx, tracing.Config{Endpoint: p.OTLPEndpoint, Identity: o.Identity, Deployment: o.Deployment,
		Version: version.Get().Version})
	if err != nil {
		return err
	}
	defer func() {
		// A span ends when its execution ends here: flush what the batch still holds.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracing.ShutdownTimeout)
		defer cancel()
		if err := tracer.Shutdown(ctx); err != nil {
			ctrl.Log.WithName("tracing").Error(err, "exporting the last spans")
		}
	}()
	o.TracerProvider = tracer.TracerProvider
	op, err := New(o, register)
	if err != nil {
		return err
	}

	restCfg, err := restConfig(p.Kubeconfig)
	if err != nil {
		return fmt.Errorf("no Kubernetes API to talk to: %w (set --kubeconfig or KUBECONFIG, or run in a cluster)", err)
	}
	restCfg.QPS = float32(p.KubeAPIQPS)
	restCfg.Burst = p.KubeAPIBurst

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: scheme,
		// Knows taskpilot's kinds without discovery: the manager is built while the API server
		// is away, too (mapper.go).
		MapperProvider:         ownMapper,
		Metrics:                metricsOptions(p),
		HealthProbeBindAddress: p.ProbeAddr,
		PprofBindAddress:       p.PprofAddr,
		// The manager's own leader election stays off: it ends the process when the leader
		// misses a renewal, which stopped every task on an API server blip. taskpilot elects
		// its leader itself (--leader-elect) and keeps running when it loses the leadership.
		LeaderElection: false,
		// Nothing reads managedFields: the cache keeps objects without them (about a third of a
		// small BackgroundTask's bytes), which is memory per task.
		Cache: cache.Options{ByObject: op.CacheByObject(), DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := op.SetupWithManager(mgr); err != nil {
		return err
	}
	defer func() { _ = op.Close() }()
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	for name, check := range op.ReadyChecks() {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return err
		}
	}
	ctrl.Log.WithName("setup").Info("starting taskpilot", "version", version.Get().String(), "deployment", o.Deployment, "identity", o.Identity,
		"task-types", op.registry.Names(), "max-concurrent-tasks", o.MaxConcurrentTasks, "leader-elect", o.LeaderElect, "sharding", o.Sharding,
		"tracing", o.TracerProvider != nil)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager stopped: %w", err)
	}
	return nil
}

// printVersion is `taskpilot version`.
func printVersion(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("taskpilot version", flag.ContinueOnError)
	output := fs.String("o", "", `output format: "" (one line) or "json"`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	info := version.Get()
	switch *output {
	case "":
		_, err := fmt.Fprintln(w, info)
		return err
	case "json":
		return json.NewEncoder(w).Encode(info)
	}
	return fmt.Errorf("taskpilot version: unknown output format %q (want json, or nothing)", *output)
}

// migrateOnly is `taskpilot migrate`: the schema, brought up to date, and nothing else.
func migrateOnly(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("taskpilot migrate", flag.ContinueOnError)
	o, _, zopts, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	ctx, cancel := context.WithTimeout(ctx, o.StartupDatabaseTimeout+5*time.Minute)
	defer cancel()
	if err := store.MigrateURL(ctx, o.MigrateDatabaseURL, ctrl.Log.WithName("store")); err != nil {
		return fmt.Errorf("migrate %s: %w", redactedDatabase(o.MigrateDatabaseURL), err)
	}
	ctrl.Log.WithName("setup").Info("schema migrated", "database", redactedDatabase(o.MigrateDatabaseURL))
	return nil
}

// metricsOptions serves the metrics over HTTPS with authentication and authorization by the API
// server (TokenReview, SubjectAccessReview), unless --metrics-secure=false.
func metricsOptions(p ProcessOptions) metricsserver.Options {
	if !p.MetricsSecure {
		return metricsserver.Options{BindAddress: p.MetricsAddr}
	}
	return metricsserver.Options{BindAddress: p.MetricsAddr, SecureServing: true,
		FilterProvider: filters.WithAuthenticationAndAuthorization}
}

// parseFlags reads args into the default Options, ProcessOptions and the logger's options, then
// completes the Options.
func parseFlags(fs *flag.FlagSet, args []string) (Options, ProcessOptions, zap.Options, error) {
	o, p := NewOptions(), NewProcessOptions()
	o.BindFlags(fs)
	p.BindFlags(fs)
	zopts := zap.Options{Development: false}
	zopts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, p, zopts, err
	}
	return o, p, zopts, o.Complete()
}

// restConfig loads the API server's address and credentials from kubeconfig, or as kubectl
// does when it is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}

// redactedDatabase names the database for logs and errors without its password.
func redactedDatabase(raw string) string {
	if pc, err := pgx.ParseConfig(raw); err == nil {
		return fmt.Sprintf("%s:%d/%s (user %s)", pc.Host, pc.Port, pc.Database, pc.User)
	}
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// OneLine flattens an error for a one-line message: drivers report multi-line errors (one line
// per address tried).
func OneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
