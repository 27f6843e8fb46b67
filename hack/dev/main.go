// Command dev brings up a complete local taskpilot: etcd and kube-apiserver (built by
// `make envtest` into bin/k8s) with the BackgroundTask CRD installed, a PostgreSQL server, and
// the operator (bin/taskpilot) in the foreground with its logs streamed. It is what `make dev`
// runs; nothing needs to be running beforehand.
//
// State is kept in --dir (default bin/dev) between runs: etcd's data (so BackgroundTasks
// survive a restart), PostgreSQL's data directory, and the generated kubeconfig and env file
// (`source bin/dev/env` sets KUBECONFIG and DATABASE_URL for kubectl and psql). Delete the
// directory to start from scratch.
//
// Ctrl-C (SIGINT), SIGTERM or SIGHUP stop everything in order (the operator first, so it can
// finish its database writes, then the control plane, then PostgreSQL) and exit 0. A second
// Ctrl-C while stopping kills the operator instead of waiting for it. Every process started
// here dies with this one even if it is killed (parent-death signal), so nothing is left
// behind to block the next run.
//
// Every flag can also be set through the environment, which is how to change them through
// `make dev`: --postgres-port=25432 is TASKPILOT_DEV_POSTGRES_PORT=25432. If DATABASE_URL is
// set, that database is used and no PostgreSQL server is started. Arguments after `--` are
// passed to the operator.
//
// For scripts and tests, --ready-file names a file written once the operator reports ready on
// /readyz; it holds the same export lines as the env file and is removed on exit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// envPrefix prefixes the environment variables that set flags.
const envPrefix = "TASKPILOT_DEV_"

// databaseName is the database the operator uses on the local server.
const databaseName = "taskpilot"

// config holds the settings from flags and environment.
type config struct {
	dir           string
	apiserverAddr string
	postgresPort  int
	metricsAddr   string
	probeAddr     string
	assets        string
	operator      string
	crdDir        string
	readyFile     string
	readyTimeout  time.Duration
	stopTimeout   time.Duration
	// databaseURL is DATABASE_URL from the environment: when set, no server is started.
	databaseURL string
	// operatorArgs are extra operator flags (after `--`).
	operatorArgs []string
}

func main() {
	kubetest.RunShimIfInvoked()
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, stderr io.Writer) int {
	cfg, err := parseFlags(args, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "dev: %v\n", err)
		return 2
	}
	log := zap.New(zap.UseDevMode(true), zap.WriteTo(stderr)).WithName("dev")
	// envtest logs through controller-runtime's logger (without one it complains after 30s);
	// its debug lines are noise here.
	ctrl.SetLogger(logr.New(infoOnly{log.WithName("envtest").GetSink()}))

	// Signals are caught from the start so that an interrupt during start-up also stops
	// whatever is already running. One buffered slot per expected signal: the first stops
	// everything, the second hurries the operator.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	d := &devEnv{cfg: cfg, log: log, out: stderr, signals: signals}
	err = d.run()
	if err != nil {
		fmt.Fprintf(stderr, "\ndev: %v\n", err)
		return 1
	}
	return 0
}

// parseFlags reads the flags, with defaults taken from TASKPILOT_DEV_* variables (looked up
// through lookup) and from KUBEBUILDER_ASSETS and DATABASE_URL.
func parseFlags(args []string, lookup func(string) (string, bool)) (config, error) {
	var c config
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./hack/dev [flags] [-- operator flags]\n\n"+
			"Starts etcd, kube-apiserver, PostgreSQL and the taskpilot operator locally (what `make dev` runs).\n"+
			"Every flag can also be set as %s<FLAG>, e.g. %sPOSTGRES_PORT=25432.\n\n", envPrefix, envPrefix)
		fs.PrintDefaults()
	}
	assets := filepath.Join("bin", "k8s")
	if v, ok := lookup("KUBEBUILDER_ASSETS"); ok && v != "" {
		assets = v
	}
	fs.StringVar(&c.dir, "dir", filepath.Join("bin", "dev"), "State directory: etcd and PostgreSQL data, kubeconfig, env file, logs. Kept between runs; delete it to start afresh.")
	fs.StringVar(&c.apiserverAddr, "apiserver-addr", "127.0.0.1:16443", "Address of the kube-apiserver (host:port).")
	fs.IntVar(&c.postgresPort, "postgres-port", 15432, "Port of the local PostgreSQL server on 127.0.0.1 (unused when DATABASE_URL is set).")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:18080", "Address of the operator's metrics endpoint (\"0\" disables it).")
	fs.StringVar(&c.probeAddr, "probe-addr", "127.0.0.1:18081", "Address of the operator's /healthz and /readyz endpoints.")
	fs.StringVar(&c.assets, "assets", assets, "Directory holding the etcd and kube-apiserver binaries, built by 'make envtest'; $KUBEBUILDER_ASSETS changes the default.")
	fs.StringVar(&c.operator, "operator", filepath.Join("bin", "taskpilot"), "Operator binary, built by 'make build'.")
	fs.StringVar(&c.crdDir, "crd-dir", filepath.Join("config", "crd", "bases"), "Directory of the CRD manifests to install.")
	fs.StringVar(&c.readyFile, "ready-file", "", "Write this file (the env file's export lines) once the operator is ready; removed on exit. For scripts and tests.")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", 3*time.Minute, "How long to wait for the operator to report ready.")
	fs.DurationVar(&c.stopTimeout, "stop-timeout", 30*time.Second, "How long to wait for the operator to stop after SIGTERM before killing it.")

	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := lookup(name); ok {
			if err := f.Value.Set(v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
			f.DefValue = v
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.operatorArgs = fs.Args()
	if v, ok := lookup("DATABASE_URL"); ok {
		c.databaseURL = v
	}
	if c.postgresPort <= 0 || c.postgresPort > 65535 {
		return c, fmt.Errorf("--postgres-port %d is not a port", c.postgresPort)
	}
	return c, nil
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// flagHint names a flag and its environment variable for error messages.
func flagHint(name string) string {
	return fmt.Sprintf("--%s (or %s)", name, envName(name))
}

// since formats the time elapsed since start for progress lines.
func since(start time.Time) string {
	return time.Since(start).Round(100 * time.Millisecond).String()
}

// devEnv is one run: what it started, so that it can stop it again.
type devEnv struct {
	cfg     config
	log     logr.Logger
	out     io.Writer
	signals <-chan os.Signal

	// Absolute paths derived from cfg.
	dir, kubeconfig, envFile string
	// lock holds the state directory's lock while open (see lockStateDir).
	lock *os.File
	// readyWritten: this run wrote the ready file (and so removes it).
	readyWritten bool

	controlPlane *controlPlane
	postgres     *postgres
	operator     *operator
}

// errInterrupted ends start-up early because the user asked to stop: not a failure.
var errInterrupted = errors.New("interrupted")

// run starts everything, waits for a signal or the operator's exit, and stops everything.
func (d *devEnv) run() (err error) {
	start := time.Now()
	defer func() {
		if stopErr := d.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		if errors.Is(err, errInterrupted) {
			err = nil
		}
		if err == nil {
			d.log.Info("stopped; data kept for the next run", "dir", d.cfg.dir)
		}
	}()

	if err := d.preflight(); err != nil {
		return err
	}
	if err := d.startBackends(); err != nil {
		return err
	}
	if err := d.interrupted(); err != nil {
		return err
	}
	if err := d.writeEnvFile(); err != nil {
		return err
	}
	d.printNextSteps()
	if err := d.startOperator(); err != nil {
		return err
	}
	if err := d.waitReady(start); err != nil {
		return err
	}

	select {
	case sig := <-d.signals:
		d.log.Info("stopping", "signal", sig.String())
		return nil
	case <-d.operator.exited:
		return fmt.Errorf("the operator exited on its own (%w); its log is above", d.operator.exitErr())
	}
}

// interrupted returns errInterrupted if a stop signal arrived.
func (d *devEnv) interrupted() error {
	select {
	case sig := <-d.signals:
		d.log.Info("stopping during start-up", "signal", sig.String())
		return errInterrupted
	default:
		return nil
	}
}

// stop stops whatever was started, in dependency order: the operator (it writes to both
// backends while stopping), then the control plane, then PostgreSQL.
func (d *devEnv) stop() error {
	var errs []error
	if d.readyWritten {
		if err := os.Remove(d.cfg.readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove ready file: %w", err))
		}
	}
	if d.operator != nil {
		errs = append(errs, d.operator.stop(d.cfg.stopTimeout, d.signals))
	}
	if d.controlPlane != nil {
		start := time.Now()
		if err := d.controlPlane.stop(); err != nil {
			errs = append(errs, err)
		} else {
			d.log.Info("control plane stopped in " + since(start))
		}
	}
	if d.postgres != nil {
		start := time.Now()
		if err := d.postgres.stop(); err != nil {
			errs = append(errs, err)
		} else if d.postgres.server != nil {
			d.log.Info("PostgreSQL stopped in " + since(start))
		}
	}
	if d.lock != nil {
		_ = d.lock.Close() // releases the state directory
	}
	return errors.Join(errs...)
}

// startBackends starts the control plane and PostgreSQL at the same time (each takes seconds,
// mostly waiting) and waits for both.
func (d *devEnv) startBackends() error {
	type result struct {
		cp  *controlPlane
		pg  *postgres
		err error
	}
	cpDone, pgDone := make(chan result, 1), make(chan result, 1)
	go func() {
		cp, err := startControlPlane(d.cfg, d.dir, d.log)
		cpDone <- result{cp: cp, err: err}
	}()
	go func() {
		pg, err := startPostgres(d.cfg, d.dir, d.log)
		pgDone <- result{pg: pg, err: err}
	}()
	cp, pg := <-cpDone, <-pgDone
	d.controlPlane, d.postgres = cp.cp, pg.pg
	return errors.Join(cp.err, pg.err)
}

// infoOnly is a log sink that drops debug (V>0) lines.
type infoOnly struct{ logr.LogSink }

// Enabled implements logr.LogSink.
func (s infoOnly) Enabled(level int) bool { return level == 0 && s.LogSink.Enabled(level) }

// WithValues implements logr.LogSink.
func (s infoOnly) WithValues(kv ...any) logr.LogSink { return infoOnly{s.LogSink.WithValues(kv...)} }

// WithName implements logr.LogSink.
func (s infoOnly) WithName(name string) logr.LogSink { return infoOnly{s.LogSink.WithName(name)} }
