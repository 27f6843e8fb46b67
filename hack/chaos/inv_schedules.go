package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
)

// schedulesNamespace holds the TaskSchedules of the run and their children, apart from the
// load, so the other invariants see exactly the load.
const schedulesNamespace = "chaos-schedules"

// scheduleEvery is the period of every schedule of the run: a slot every 4 seconds, on the
// seconds divisible by 4 in every time zone (zones differ by whole minutes), so the check
// computes the expected slots without the operator's cron code.
const (
	scheduleEvery = 4 * time.Second
	scheduleExpr  = "*/4 * * * * *"
)

// chaosSchedules are the run's TaskSchedules: each concurrency and catch-up policy, in zones
// with and without DST, under the same faults as the load.
func chaosSchedules() []v1alpha1.TaskSchedule {
	mk := func(name, zone string, policy v1alpha1.ConcurrencyPolicy, catchUp v1alpha1.CatchUpPolicy, task string) v1alpha1.TaskSchedule {
		params := `{}`
		if task == "sleep" {
			params = `{"duration":"9s","tick":"1s"}`
		}
		return v1alpha1.TaskSchedule{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: schedulesNamespace},
			Spec: v1alpha1.TaskScheduleSpec{
				Schedule: scheduleExpr, TimeZone: zone, ConcurrencyPolicy: policy,
				CatchUp:                &v1alpha1.CatchUp{Policy: catchUp, MaxRuns: ptr.To[int32](3)},
				SuccessfulHistoryLimit: ptr.To[int32](2), FailedHistoryLimit: ptr.To[int32](2),
				Template: v1alpha1.TaskTemplate{Spec: v1alpha1.BackgroundTaskSpec{TaskName: task,
					Params: &runtime.RawExtension{Raw: []byte(params)}}},
			},
		}
	}
	return []v1alpha1.TaskSchedule{
		mk("allow-skip-utc", "UTC", v1alpha1.ConcurrencyAllow, v1alpha1.CatchUpSkip, "noop"),
		mk("forbid-all-berlin", "Europe/Berlin", v1alpha1.ConcurrencyForbid, v1alpha1.CatchUpAll, "sleep"),
		mk("replace-latest-newyork", "America/New_York", v1alpha1.ConcurrencyReplace, v1alpha1.CatchUpLatest, "sleep"),
		mk("allow-all-kolkata", "Asia/Kolkata", v1alpha1.ConcurrencyAllow, v1alpha1.CatchUpAll, "noop"),
	}
}

// startSchedules creates the run's schedules.
func startSchedules(ctx context.Context, e *env) error {
	for _, ts := range chaosSchedules() {
		if err := e.client.Create(ctx, &ts); err != nil {
			return fmt.Errorf("create schedule %s: %w", ts.Name, err)
		}
	}
	return nil
}

// scheduleObs is what invariant 8 needs about one schedule: when it began, its recorded slots
// and the children that exist.
type scheduleObs struct {
	name     string
	created  time.Time
	firings  []firingObs
	children []string
}

type firingObs struct {
	slot     time.Time
	outcome  string
	taskName string
}

// observeSchedules reads every schedule of the run, its rows and its children.
func observeSchedules(ctx context.Context, e *env) ([]scheduleObs, error) {
	var list v1alpha1.TaskScheduleList
	if err := e.client.List(ctx, &list, client.InNamespace(schedulesNamespace)); err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	var children v1alpha1.BackgroundTaskList
	if err := e.client.List(ctx, &children, client.InNamespace(schedulesNamespace)); err != nil {
		return nil, fmt.Errorf("list the schedules' children: %w", err)
	}
	var out []scheduleObs
	for _, ts := range list.Items {
		o := scheduleObs{name: ts.Name, created: ts.CreationTimestamp.Time}
		rows, err := e.db.Query(ctx, `SELECT slot, outcome, task_name FROM background_task_firings
WHERE schedule_uid = $1 AND NOT manual ORDER BY slot`, string(ts.UID))
		if err != nil {
			return nil, fmt.Errorf("read the firings of %s: %w", ts.Name, err)
		}
		for rows.Next() {
			var f firingObs
			if err := rows.Scan(&f.slot, &f.outcome, &f.taskName); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read the firings of %s: %w", ts.Name, err)
			}
			o.firings = append(o.firings, f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read the firings of %s: %w", ts.Name, err)
		}
		for _, bt := range children.Items {
			if bt.Labels[v1alpha1.LabelSchedule] == ts.Name {
				o.children = append(o.children, bt.Name)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// checkSchedules is invariant 8: every slot of every schedule from its creation until a moment
// before the check has exactly one row in background_task_firings (none left out, none at a
// time that is not a slot), a created slot's row names the child its slot names, and every
// child that exists belongs to a slot recorded as created. At most one child per slot follows
// from the names; this checks that the names and rows agree under the faults.
func checkSchedules(scheds []scheduleObs, until time.Time) result {
	r := result{id: "8", title: "every slot of a schedule has exactly one firing row and at most one child"}
	if len(scheds) == 0 {
		r.skipped = "no schedule was observed"
		return r
	}
	slots, rows, created := 0, 0, 0
	for _, s := range scheds {
		bySlot := map[int64]firingObs{}
		for _, f := range s.firings {
			rows++
			if f.slot.UnixNano()%int64(scheduleEvery) != 0 {
				r.add("not a slot", example{task: s.name, what: fmt.Sprintf("a row at %s, which is not a slot", f.slot.UTC().Format(time.RFC3339Nano))})
			}
			if _, dup := bySlot[f.slot.Unix()]; dup {
				r.add("two rows", example{task: s.name, what: "two rows for slot " + f.slot.UTC().Format(time.RFC3339)})
			}
			bySlot[f.slot.Unix()] = f
			if f.outcome == "created" || f.outcome == "replaced" {
				created++
				if want := s.name + "-" + strconv.FormatInt(f.slot.Unix(), 10); f.taskName != want {
					r.add("wrong child", example{task: s.name, what: fmt.Sprintf("slot %s created %q, want %q", f.slot.UTC().Format(time.RFC3339), f.taskName, want)})
				}
			}
		}
		first := s.created.Truncate(scheduleEvery).Add(scheduleEvery)
		for at := first; !at.After(until); at = at.Add(scheduleEvery) {
			slots++
			if _, ok := bySlot[at.Unix()]; !ok {
				r.add("slot without a row", example{task: s.name, what: "no row for slot " + at.UTC().Format(time.RFC3339)})
			}
		}
		for _, child := range s.children {
			unix, err := strconv.ParseInt(strings.TrimPrefix(child, s.name+"-"), 10, 64)
			if err != nil {
				r.add("stray child", example{task: s.name, what: "child " + child + " is not named after a slot"})
				continue
			}
			f, ok := bySlot[unix]
			if (!ok && !time.Unix(unix, 0).After(until)) || (ok && f.outcome != "created" && f.outcome != "replaced") {
				r.add("child without its row", example{task: s.name, what: fmt.Sprintf("child %s exists, its slot's row: %q", child, f.outcome)})
			}
		}
	}
	r.checked = fmt.Sprintf("%d schedules, %d slots until %s, %d rows (%d created)", len(scheds), slots, until.UTC().Format(time.TimeOnly), rows, created)
	return r
}
