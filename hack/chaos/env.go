package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/test/apiproxy"
	"github.com/taskpilot/taskpilot/test/kubetest"
	"github.com/taskpilot/taskpilot/test/pgtest"
	"github.com/taskpilot/taskpilot/test/witness"
)

// env is what the run starts: the control plane, PostgreSQL (durable, in the work directory),
// the harness's own clients, and the operator fleet.
type env struct {
	log        logr.Logger
	dir        string
	cp         *kubetest.Env
	kubeconfig string // admin, straight to the API server
	// proxy stands between the operators and the API server (the slow-Lease fault);
	// opKubeconfig reaches the API server through it.
	proxy          *apiproxy.Proxy
	opKubeconfig   string
	pg             *pgtest.Server
	pgVersion      string
	db             *pgxpool.Pool // the taskpilot database, read by the checks
	wdb            *pgxpool.Pool // the witness database
	client         client.Client // admin, no client-side rate limit
	fleet          *fleet
	operatorBinary string
	sharded        bool // the supervised replicas run with --sharding
}

// startEnv starts everything but the operators, in dir.
func startEnv(ctx context.Context, log logr.Logger, dir, operatorBinary string, sharded bool) (e *env, err error) {
	e = &env{log: log, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig"), opKubeconfig: filepath.Join(dir, "operators.kubeconfig"),
		operatorBinary: operatorBinary, sharded: sharded}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.close())
		}
	}()
	type started struct {
		cp  *kubetest.Env
		pg  *pgtest.Server
		err error
	}
	cpc, pgc := make(chan started, 1), make(chan started, 1)
	go func() {
		cp, err := kubetest.StartInDir(kubetest.DirOptions{Dir: filepath.Join(dir, "controlplane"), DurableEtcd: true})
		cpc <- started{cp: cp, err: err}
	}()
	go func() {
		pg, err := pgtest.Start(ctx, pgtest.WithDataDir(filepath.Join(dir, "postgres")), pgtest.WithProcessGroup(),
			pgtest.WithSetting("max_connections", "300"))
		pgc <- started{pg: pg, err: err}
	}()
	cpr, pgr := <-cpc, <-pgc
	e.cp, e.pg = cpr.cp, pgr.pg
	if err := errors.Join(cpr.err, pgr.err); err != nil {
		return e, err
	}
	log.Info("control plane and PostgreSQL up", "apiserver", e.cp.APIServerAddr(), "postgres", e.pg.URL())
	if err := e.cp.WriteKubeconfig(e.kubeconfig); err != nil {
		return e, fmt.Errorf("write kubeconfig: %w", err)
	}
	if e.proxy, err = apiproxy.Start(e.cp.Config); err != nil {
		return e, fmt.Errorf("start the API proxy: %w", err)
	}
	if err := e.proxy.WriteKubeconfig(e.opKubeconfig); err != nil {
		return e, err
	}
	if err := e.openDatabases(ctx); err != nil {
		return e, err
	}
	return e, e.openClients(ctx)
}

// openDatabases creates the operator's database and the witness's (a database of its own,
// which nothing of taskpilot touches), and the witness table.
func (e *env) openDatabases(ctx context.Context) error {
	dbURL, err := e.pg.CreateDatabase(ctx, "taskpilot")
	if err != nil {
		return err
	}
	wURL, err := e.pg.CreateDatabase(ctx, "witness")
	if err != nil {
		return err
	}
	if e.db, err = pgxpool.New(ctx, dbURL); err != nil {
		return fmt.Errorf("taskpilot pool: %w", err)
	}
	if e.wdb, err = pgxpool.New(ctx, wURL); err != nil {
		return fmt.Errorf("witness pool: %w", err)
	}
	if err := e.db.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&e.pgVersion); err != nil {
		return fmt.Errorf("query PostgreSQL: %w", err)
	}
	if err := witness.CreateTable(ctx, e.wdb); err != nil {
		return err
	}
	e.fleet = newFleet(e.log.WithName("fleet"), e.operatorBinary, e.dir, e.sharded, []string{
		"KUBECONFIG=" + e.opKubeconfig, "DATABASE_URL=" + dbURL, witness.URLEnv + "=" + wURL,
	})
	return nil
}

// openClients builds the client of the driver and of the checks, and creates the namespaces.
func (e *env) openClients(ctx context.Context) error {
	cfg := rest.CopyConfig(e.cp.Config)
	cfg.QPS, cfg.Burst = -1, -1 // the load generator is not the system under test
	var err error
	if e.client, err = client.New(cfg, client.Options{Scheme: e.cp.Scheme}); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	for _, ns := range []string{namespace, warmupNamespace, schedulesNamespace, probeNamespace} {
		if err := e.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return nil
}

// close stops whatever was started, operators first (they write to both backends).
func (e *env) close() error {
	var errs []error
	if e.fleet != nil {
		e.fleet.stopAll()
	}
	if e.db != nil {
		e.db.Close()
	}
	if e.wdb != nil {
		e.wdb.Close()
	}
	if e.proxy != nil {
		errs = append(errs, e.proxy.Close())
	}
	if e.cp != nil {
		errs = append(errs, e.cp.Stop())
	}
	if e.pg != nil {
		errs = append(errs, e.pg.Close())
	}
	return errors.Join(errs...)
}

// makeWorkDir creates the run's directory, searchable by the postgres user (PostgreSQL refuses
// to run as root, so as root it runs as postgres).
func makeWorkDir() (string, error) {
	dir, err := os.MkdirTemp("", "taskpilot-chaos-")
	if err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	return dir, nil
}
