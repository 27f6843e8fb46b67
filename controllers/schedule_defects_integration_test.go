package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/store"
)

// scheduleReady is the schedule's Ready condition, once it reflects generation gen.
func (h *harness) scheduleReady(name string, gen int64) *metav1.Condition {
	ts := h.getSchedule(name)
	ready := meta.FindStatusCondition(ts.Status.Conditions, v1alpha1.ConditionReady)
	if ts.Status.ObservedGeneration < gen || ready == nil {
		return nil
	}
	return ready
}

// exec runs a statement on the test's database.
func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	_, err := h.sql.Exec(h.ctx, sql, args...)
	require.NoError(h.t, err, sql)
}

// TestTheRowDecidesTheSlot: another leader that records a slot first (here a trigger that
// inserts its row just before the operator's, as a second leader's look would) decides that
// slot: the operator creates no child for it. A child created before its row won would run under
// the other leader's `skipped` row.
func TestTheRowDecidesTheSlot(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("contested", "*/2 * * * * *", "countdown", `{"from":1,"interval":"10ms"}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.SuccessfulHistoryLimit = ptr.To[int32](100)
		s.Spec.CatchUp = everySlot()
	})
	// Every slot divisible by 6 s is won by "another leader", which skips it.
	h.exec(fmt.Sprintf(`CREATE FUNCTION other_leader() RETURNS trigger AS $$
BEGIN
  IF NEW.schedule_uid = '%s' AND NEW.recorded_by <> 'other-leader' AND EXTRACT(EPOCH FROM NEW.slot)::bigint %% 6 = 0 THEN
    INSERT INTO background_task_firings (schedule_uid, namespace, schedule, slot, outcome, reason, recorded_by)
    VALUES (NEW.schedule_uid, NEW.namespace, NEW.schedule, NEW.slot, 'skipped', 'Forbid: decided by another leader', 'other-leader')
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql`, ts.UID))
	h.exec(`CREATE TRIGGER other_leader BEFORE INSERT ON background_task_firings FOR EACH ROW EXECUTE FUNCTION other_leader()`)

	require.Eventually(t, func() bool {
		return count(h.firings(ts), store.FiringSkipped) >= 2 && count(h.firings(ts), store.FiringCreated) >= 3
	}, 60*time.Second, 100*time.Millisecond)
	children := map[string]bool{}
	for _, bt := range h.children(ts) {
		children[bt.Name] = true
	}
	var rows int
	for _, f := range h.firings(ts) {
		name := ts.Name + "-" + itoa(f.Slot.Unix())
		if f.Outcome == store.FiringSkipped {
			require.Equal(t, "other-leader", f.RecordedBy)
			require.False(t, children[name], "slot %s was skipped by the leader that won it, yet %s exists", f.Slot, name)
			require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_tasks WHERE name = $1`, name).Scan(&rows))
			require.Zero(t, rows, "%s never ran", name)
			continue
		}
		require.Equal(t, store.FiringCreated, f.Outcome, f.Reason)
		require.Equal(t, name, f.TaskName)
	}
}

// TestAReplacingSlotNeverStopsItsOwnChild: under Replace, a slot whose child exists already (a
// look created it and stopped before recording the slot) records it created and stops nothing
// of its own: stopping every active child would stop the slot's own and record it `replaced`.
func TestAReplacingSlotNeverStopsItsOwnChild(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("replacing", "*/3 * * * * *", "sleep", `{"duration":"1h","tick":"100ms"}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.ConcurrencyPolicy = v1alpha1.ConcurrencyReplace
		s.Spec.FailedHistoryLimit = ptr.To[int32](10)
	})
	require.Eventually(t, func() bool { return count(h.firings(ts), store.FiringCreated) >= 1 }, 30*time.Second, 50*time.Millisecond)
	// The child of a slot 3 to 6 s ahead, as a look that crashed before its row left it.
	slot := time.Now().Add(3 * time.Second).Truncate(3 * time.Second).Add(3 * time.Second)
	own := &v1alpha1.BackgroundTask{
		ObjectMeta: metav1.ObjectMeta{Name: ts.Name + "-" + itoa(slot.Unix()), Namespace: h.ns,
			Labels: map[string]string{v1alpha1.LabelSchedule: ts.Name, v1alpha1.LabelSlot: itoa(slot.Unix())}},
		Spec: *ts.Spec.Template.Spec.DeepCopy(),
	}
	cur := h.getSchedule(ts.Name)
	own.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(cur, v1alpha1.GroupVersion().WithKind("TaskSchedule"))}
	require.NoError(t, h.c.Create(h.ctx, own))

	var row store.Firing
	require.Eventually(t, func() bool {
		for _, f := range h.firings(ts) {
			if f.Slot.Equal(slot) {
				row = f
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond)
	// Stop firing before the next slot, to look at the child as its own slot left it.
	require.NoError(t, h.c.Patch(h.ctx, h.getSchedule(ts.Name), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))))
	require.Equal(t, store.FiringCreated, row.Outcome, "the slot's child existed: %s", row.Reason)
	require.Equal(t, own.Name, row.TaskName)
	require.Equal(t, v1alpha1.DesiredRunning, h.get(own.Name).Spec.State, "its own slot never stops it")
}

// queriesOf counts the statements whose arguments name a value (a schedule's UID).
type queriesOf struct {
	value string
	n     atomic.Int64
}

func (q *queriesOf) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	for _, a := range d.Args {
		if s, ok := a.(string); ok && s == q.value {
			q.n.Add(1)
			break
		}
	}
	return ctx
}

func (q *queriesOf) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestAnImpossibleScheduleIsNotLookedAtInALoop: `0 0 30 2 *` parses but names no time: Ready
// says so and the operator does not look at it again until its spec changes: requeued, it would
// be looked at in a loop, each look querying PostgreSQL.
func TestAnImpossibleScheduleIsNotLookedAtInALoop(t *testing.T) {
	h := newHarness(t)
	looks := &queriesOf{}
	h.startOperator(operatorConfig{statements: looks})
	never := h.createSchedule("february-30", "0 0 30 2 *", "countdown", `{"from":1}`)
	looks.value = string(never.UID)
	require.Eventually(t, func() bool {
		ready := h.scheduleReady(never.Name, never.Generation)
		return ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == "NoFutureSlot"
	}, waitTimeout, 50*time.Millisecond)
	require.Nil(t, h.getSchedule(never.Name).Status.NextScheduleTime)
	// Proof that the operator had the time to loop: another schedule fires three slots.
	every := h.createSchedule("every-second", "* * * * * *", "countdown", `{"from":1,"interval":"10ms"}`)
	require.Eventually(t, func() bool { return len(h.firings(every)) >= 3 }, 30*time.Second, 50*time.Millisecond)
	require.LessOrEqual(t, looks.n.Load(), int64(6), "statements about the impossible schedule: one look, not a loop")
}

// TestAnEditedScheduleStartsFromTheEdit: slots before an edit of spec.schedule are not slots of
// the new expression. A yearly schedule, three hours old by the operator's clock, edited to
// every five minutes with catchUp All, fires nothing until the next five-minute slot (planned
// from the schedule's creation, it would fire 10 children at once and record 26 `missed` rows).
func TestAnEditedScheduleStartsFromTheEdit(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{clock: skewedClock{skew: 3 * time.Hour}})
	ts := h.createSchedule("edited", "0 0 1 1 *", "countdown", `{"from":1}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.CatchUp = &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll}
	})
	require.Eventually(t, func() bool { return h.scheduleReady(ts.Name, ts.Generation) != nil }, waitTimeout, 50*time.Millisecond)
	require.NoError(t, h.c.Patch(h.ctx, h.getSchedule(ts.Name), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"schedule":"*/5 * * * *"}}`))))
	require.Eventually(t, func() bool { return h.scheduleReady(ts.Name, ts.Generation+1) != nil }, waitTimeout, 50*time.Millisecond)
	firings := h.firings(ts)
	require.LessOrEqual(t, len(firings), 1, "at most a slot that came due since the edit: %+v", firings)
	require.Zero(t, count(firings, store.FiringMissed), "no slot before the edit is missed")
	require.LessOrEqual(t, len(h.children(ts)), 1)
}

// TestAChildDeletedBeforeItsRowIsNeverRunTwice: while PostgreSQL refuses the slots' rows, a
// slot creates nothing; its child runs once the row is written, and once only. A child created
// before its row could run, end and be deleted (ttlSecondsAfterFinished 0) while its row could
// not be written, and the next look would create the slot's child again.
func TestAChildDeletedBeforeItsRowIsNeverRunTwice(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	h.exec(`CREATE TABLE refuse_firings (on_ boolean)`)
	h.exec(`INSERT INTO refuse_firings VALUES (true)`)
	h.exec(`CREATE SEQUENCE refused_firings`)
	h.exec(`CREATE FUNCTION refuse_firings() RETURNS trigger AS $$
BEGIN
  IF EXISTS (SELECT FROM refuse_firings) THEN
    PERFORM nextval('refused_firings');
    RAISE EXCEPTION 'injected: this firing cannot be written now';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql`)
	h.exec(`CREATE TRIGGER refuse_firings BEFORE INSERT ON background_task_firings FOR EACH ROW EXECUTE FUNCTION refuse_firings()`)
	ts := h.createSchedule("once", "*/2 * * * * *", "countdown", `{"from":1,"interval":"10ms"}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.CatchUp = &v1alpha1.CatchUp{Policy: v1alpha1.CatchUpAll}
		s.Spec.Template.Spec.TTLSecondsAfterFinished = ptr.To[int32](0)
	})
	// The operator tried, and whatever it created meanwhile ran and is gone.
	require.Eventually(t, func() bool {
		var refused int64
		require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT last_value FROM refused_firings`).Scan(&refused))
		var open int
		require.NoError(t, h.sql.QueryRow(h.ctx, `SELECT count(*) FROM background_tasks WHERE name LIKE 'once-%' AND deleted_at IS NULL`).Scan(&open))
		return refused >= 5 && open == 0 && len(h.children(ts)) == 0
	}, 60*time.Second, 50*time.Millisecond)
	h.exec(`DELETE FROM refuse_firings`)
	require.Eventually(t, func() bool { return count(h.firings(ts), store.FiringCreated) >= 3 }, 60*time.Second, 100*time.Millisecond)
	rows, err := h.sql.Query(h.ctx, `SELECT name, count(*) FROM background_tasks WHERE name LIKE 'once-%' GROUP BY name`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int
		require.NoError(t, rows.Scan(&name, &n))
		require.Equal(t, 1, n, "%s ran %d times", name, n)
	}
	require.NoError(t, rows.Err())
}

// TestReplaceStartsTheNewRunOnceTheOldOneEnded: the slot's run starts after the run it replaces
// ended (its terminal row), not beside it: started as soon as the old one is set Stopped, both
// would run until the old one reaches its next pause point (here a task that takes a second to
// heed a stop).
func TestReplaceStartsTheNewRunOnceTheOldOneEnded(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("one-at-a-time", "*/2 * * * * *", "stubborn", `{"for":"3s"}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.ConcurrencyPolicy = v1alpha1.ConcurrencyReplace
		s.Spec.FailedHistoryLimit = ptr.To[int32](10)
	})
	require.Eventually(t, func() bool { return count(h.firings(ts), store.FiringReplaced) >= 2 }, 60*time.Second, 100*time.Millisecond)
	var created []string
	for _, f := range h.firings(ts) {
		if f.Outcome.Created() {
			created = append(created, f.TaskName)
		}
	}
	for i := 1; i < len(created); i++ {
		var ended, started *time.Time
		err := h.sql.QueryRow(h.ctx, `SELECT b.end_time FROM background_tasks b WHERE b.name = $1`, created[i-1]).Scan(&ended)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // never ran
		}
		require.NoError(t, err)
		if err := h.sql.QueryRow(h.ctx, `SELECT min(t.at) FROM background_task_transitions t JOIN background_tasks b ON b.uid = t.task_uid
WHERE b.name = $1 AND t.to_status = 'RUNNING'`, created[i]).Scan(&started); err != nil || started == nil {
			continue // not started yet
		}
		require.NotNil(t, ended, "%s runs while %s, which replaced it, runs", created[i-1], created[i])
		require.False(t, started.Before(*ended), "%s started at %s, before %s ended at %s", created[i], started, created[i-1], ended)
	}
}

// TestRunNowTwiceInOneSecond: two run-now requests within a second make two runs, each request
// is looked at once and then removed from the schedule.
func TestRunNowTwiceInOneSecond(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("on-demand", "0 0 1 1 *", "countdown", `{"from":1,"interval":"10ms"}`)
	request := func(at time.Time) {
		require.Eventually(t, func() bool { // as the plugin does: one request at a time
			_, pending := h.getSchedule(ts.Name).Annotations[v1alpha1.AnnotationRunNow]
			return !pending
		}, waitTimeout, 20*time.Millisecond, "the previous request is looked at and removed")
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.AnnotationRunNow, at.UTC().Format(time.RFC3339Nano))
		require.NoError(t, h.c.Patch(h.ctx, h.getSchedule(ts.Name), client.RawPatch(types.MergePatchType, []byte(patch))))
	}
	first := time.Now().Truncate(time.Second).Add(100 * time.Millisecond)
	request(first)
	request(first.Add(300 * time.Millisecond))
	h.waitPhase(ts.Name+"-manual-"+itoa(first.UnixMilli()), v1alpha1.PhaseFinished)
	h.waitPhase(ts.Name+"-manual-"+itoa(first.Add(300*time.Millisecond).UnixMilli()), v1alpha1.PhaseFinished)
	require.Eventually(t, func() bool {
		_, pending := h.getSchedule(ts.Name).Annotations[v1alpha1.AnnotationRunNow]
		return !pending
	}, waitTimeout, 20*time.Millisecond)
	require.Len(t, h.firings(ts), 2)
}

// TestARefusedTemplateSaysSoInReady: a template whose BackgroundTask the API server refuses
// (here an invalid label value) shows in Ready as soon as the schedule is applied, and its slots
// are recorded missed with the API server's words; Ready never says Scheduling while every slot
// is missed.
func TestARefusedTemplateSaysSoInReady(t *testing.T) {
	h := newHarness(t)
	h.startOperator(operatorConfig{})
	ts := h.createSchedule("refused", "* * * * * *", "countdown", `{"from":1}`, func(s *v1alpha1.TaskSchedule) {
		s.Spec.Template.Metadata.Labels["team"] = "not a valid label value!"
	})
	require.Eventually(t, func() bool {
		ready := h.scheduleReady(ts.Name, ts.Generation)
		return ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == "TemplateRefused" &&
			strings.Contains(ready.Message, "not a valid label value!")
	}, waitTimeout, 50*time.Millisecond)
	require.Eventually(t, func() bool { return count(h.firings(ts), store.FiringMissed) >= 2 }, 30*time.Second, 50*time.Millisecond)
	for _, f := range h.firings(ts) {
		require.Equal(t, store.FiringMissed, f.Outcome)
		require.Contains(t, f.Reason, "Refused: ")
	}
	require.Empty(t, h.children(ts))
	// Fixed, it fires and says so.
	require.NoError(t, h.c.Patch(h.ctx, h.getSchedule(ts.Name), client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"labels":{"team":"reports"}}}}}`))))
	require.Eventually(t, func() bool {
		ready := h.scheduleReady(ts.Name, ts.Generation+1)
		return ready != nil && ready.Status == metav1.ConditionTrue && count(h.firings(ts), store.FiringCreated) >= 1
	}, 30*time.Second, 50*time.Millisecond)
}
