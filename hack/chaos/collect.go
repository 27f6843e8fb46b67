package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/test/witness"
)

// crObs is a BackgroundTask as the API server has it.
type crObs struct {
	name, uid          string
	taskName           string
	state              v1alpha1.DesiredState
	restartGeneration  int64
	maxRetries         int32
	phase              v1alpha1.Phase
	attempt            int32
	observedRestartGen int64
	deleting           bool
}

// rowObs is a background_tasks row.
type rowObs struct {
	uid, name, taskName string
	status              string
	attempt             int
	lastSeq             int64
	deleted             bool
	lastAt              time.Time // time of the transition at last_seq
}

// transition is one background_task_transitions row.
type transition struct {
	seq      int64
	from, to string // from is "" for seq 1 (NULL)
	attempt  int
	reason   string
	message  string
	at       time.Time
}

// observation is one consistent-enough look at every source: CRs, rows, history, witness.
type observation struct {
	at    time.Time
	crs   map[string]crObs // by uid
	rows  map[string]rowObs
	trans map[string][]transition
	execs map[string][]witness.Execution
}

func listCRs(ctx context.Context, c client.Reader, ns string) (map[string]crObs, error) {
	var list v1alpha1.BackgroundTaskList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list BackgroundTasks: %w", err)
	}
	out := make(map[string]crObs, len(list.Items))
	for _, bt := range list.Items {
		out[string(bt.UID)] = crObs{
			name: bt.Name, uid: string(bt.UID), taskName: bt.Spec.TaskName, state: desiredOrDefault(bt.Spec.State),
			restartGeneration: bt.Spec.RestartGeneration, maxRetries: bt.Spec.MaxRetries,
			phase: bt.Status.Phase, attempt: bt.Status.Attempt, observedRestartGen: bt.Status.ObservedRestartGeneration,
			deleting: !bt.DeletionTimestamp.IsZero(),
		}
	}
	return out, nil
}

func desiredOrDefault(s v1alpha1.DesiredState) v1alpha1.DesiredState {
	if s == "" {
		return v1alpha1.DesiredRunning
	}
	return s
}

func readRows(ctx context.Context, db *pgxpool.Pool) (map[string]rowObs, error) {
	rows, err := db.Query(ctx, `SELECT t.uid, t.name, t.task_name, t.status, t.attempt, t.last_seq, t.deleted_at IS NOT NULL,
       coalesce(h.at, t.updated_at)
FROM background_tasks t
LEFT JOIN background_task_transitions h ON h.task_uid = t.uid AND h.seq = t.last_seq
WHERE t.namespace = $1`, namespace)
	if err != nil {
		return nil, fmt.Errorf("read background_tasks: %w", err)
	}
	defer rows.Close()
	out := map[string]rowObs{}
	for rows.Next() {
		var r rowObs
		if err := rows.Scan(&r.uid, &r.name, &r.taskName, &r.status, &r.attempt, &r.lastSeq, &r.deleted, &r.lastAt); err != nil {
			return nil, fmt.Errorf("read background_tasks: %w", err)
		}
		out[r.uid] = r
	}
	return out, rows.Err()
}

func readTransitions(ctx context.Context, db *pgxpool.Pool) (map[string][]transition, error) {
	rows, err := db.Query(ctx, `SELECT h.task_uid, h.seq, coalesce(h.from_status, ''), h.to_status, h.attempt, h.reason, h.message, h.at
FROM background_task_transitions h JOIN background_tasks t ON t.uid = h.task_uid
WHERE t.namespace = $1 ORDER BY h.task_uid, h.seq`, namespace)
	if err != nil {
		return nil, fmt.Errorf("read background_task_transitions: %w", err)
	}
	defer rows.Close()
	out := map[string][]transition{}
	for rows.Next() {
		var uid string
		var t transition
		if err := rows.Scan(&uid, &t.seq, &t.from, &t.to, &t.attempt, &t.reason, &t.message, &t.at); err != nil {
			return nil, fmt.Errorf("read background_task_transitions: %w", err)
		}
		out[uid] = append(out[uid], t)
	}
	return out, rows.Err()
}

// observe reads every source, the CRs first (the slowest to follow), then rows and witness.
func observe(ctx context.Context, e *env) (observation, error) {
	o := observation{at: time.Now()}
	var err error
	if o.crs, err = listCRs(ctx, e.client, namespace); err != nil {
		return o, err
	}
	if o.rows, err = readRows(ctx, e.db); err != nil {
		return o, err
	}
	if o.trans, err = readTransitions(ctx, e.db); err != nil {
		return o, err
	}
	if o.execs, err = witness.Load(ctx, e.wdb); err != nil {
		return o, err
	}
	return o, nil
}

// phaseStatus is the SQL status a CR phase shows ("" for a CR without a phase).
func phaseStatus(p v1alpha1.Phase) string {
	s, _ := lifecycle.StatusOfPhase(string(p))
	return string(s)
}
