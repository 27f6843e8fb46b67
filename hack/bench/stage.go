package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// env is what lives for the whole run: the temp dir, PostgreSQL and the operator settings.
type env struct {
	opts    options
	dir     string
	pg      *postgres
	pprof   bool
	logPath string
	stages  int
}

// stage is one scenario's world: a fresh control plane, a fresh database, the operator.
type stage struct {
	name   string
	dir    string
	cp     *controlPlane
	pg     *postgres
	dbURL  string
	pool   *pgxpool.Pool
	op     *operatorProc
	opSpec operatorSpec
}

// newStage starts a control plane and a database and, if maxTasks > 0, the operator.
func (e *env) newStage(ctx context.Context, name string, maxTasks int) (*stage, error) {
	return e.newStageWith(ctx, name, maxTasks, false)
}

// newStageWith is newStage with a control plane whose API server can be restarted.
func (e *env) newStageWith(ctx context.Context, name string, maxTasks int, restartable bool) (*stage, error) {
	e.stages++
	st := &stage{name: name, dir: filepath.Join(e.dir, fmt.Sprintf("%02d-%s", e.stages, name)), pg: e.pg}
	if err := os.MkdirAll(st.dir, 0o755); err != nil {
		return nil, fmt.Errorf("stage dir: %w", err)
	}
	progressf("[%s] starting control plane and database", name)
	var err error
	if st.cp, err = startControlPlane(st.dir, restartable); err != nil {
		return nil, err
	}
	if err := st.cp.warmUp(ctx); err != nil {
		return nil, errors.Join(err, st.close())
	}
	db := "bench_" + strings.ReplaceAll(filepath.Base(st.dir), "-", "_")
	if st.dbURL, st.pool, err = e.pg.newDatabase(ctx, db); err != nil {
		return nil, errors.Join(err, st.close())
	}
	st.opSpec = operatorSpec{
		binary: e.opts.operator, kubeconfig: st.cp.kubeconfig, databaseURL: st.dbURL,
		logPath: e.logPath, qps: e.opts.qps, burst: e.opts.burst, maxTasks: max(maxTasks, 1), pprof: e.pprof,
		identity: "bench-a", extraArgs: e.opts.operatorArgs,
	}
	if maxTasks > 0 {
		progressf("[%s] starting the operator", name)
		if st.op, err = startOperator(ctx, st.opSpec); err != nil {
			return nil, errors.Join(err, st.close())
		}
		if err := waitLeader(ctx, st); err != nil {
			return nil, errors.Join(err, st.close())
		}
	}
	return st, nil
}

// close stops the operator and the control plane and closes the pool (the database stays on
// the shared server, which is removed at the end).
func (st *stage) close() error {
	var errs []error
	if st.op != nil {
		errs = append(errs, st.op.stop())
		st.op = nil
	}
	if st.pool != nil {
		st.pool.Close()
	}
	if st.cp != nil {
		errs = append(errs, st.cp.stop())
	}
	return errors.Join(errs...)
}

// waitLeader waits until the operator holds the Lease, then a second for its controller to
// start (readyz does not wait for leadership).
func waitLeader(ctx context.Context, st *stage) error {
	err := waitFor(ctx, st.name+": leader election", time.Minute, func() (bool, string, error) {
		h, err := leaseHolder(ctx, st.cp.client)
		return err == nil && h != "", "waiting for the Lease", nil
	})
	if err != nil {
		return err
	}
	sleepCtx(ctx, time.Second)
	return nil
}

// benchNamespace is where every scenario creates its BackgroundTasks.
const benchNamespace = "default"

// watchPhases starts a phase watcher on the stage's control plane; call stop when done.
func (st *stage) watchPhases(ctx context.Context, ns string) (w *phaseWatcher, stop func()) {
	w = newPhaseWatcher()
	wctx, cancel := context.WithCancel(ctx)
	go w.run(wctx, st.cp.client, ns)
	return w, cancel
}
