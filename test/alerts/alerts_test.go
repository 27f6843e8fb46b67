package alerts_test

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/hack/monitoring"
	"github.com/taskpilot/taskpilot/test/apiproxy"
	"github.com/taskpilot/taskpilot/test/pgtest"
)

// Alert names, for the scenarios' expectations.
const (
	databaseUnreachable     = "TaskpilotDatabaseUnreachable"
	transitionsNotRecorded  = "TaskpilotTransitionsNotRecorded"
	apiServerUnreachable    = "TaskpilotAPIServerUnreachable"
	replicaWithoutMembers   = "TaskpilotReplicaWithoutMembership"
	fencedWrites            = "TaskpilotFencedWrites"
	taskStalled             = "TaskpilotTaskStalled"
	memoryBudgetSaturated   = "TaskpilotMemoryBudgetSaturated"
	scheduleSlotsMissed     = "TaskpilotScheduleSlotsMissed"
	databasePrivilegesLack  = "TaskpilotDatabasePrivilegesMissing"
	countdownParams         = `{"from":400,"interval":"100ms","checkpointEvery":1}`
	scheduleEveryTwoSeconds = "*/2 * * * * *"
)

// TestAlertsFireWhenTheyShouldAndOnlyThen runs the scenarios one after another (one of them
// stops the package's PostgreSQL server), then checks that every metric the alerts and the
// dashboard read was exported by one of the operators.
func TestAlertsFireWhenTheyShouldAndOnlyThen(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs kube-apiserver, etcd, PostgreSQL and operator processes")
	}
	seen := map[string]bool{}
	proven := map[string]string{}
	run := func(name string, f func(t *testing.T) *scenario) {
		t.Run(name, func(t *testing.T) {
			s := f(t)
			for fam := range s.rec.seen() {
				seen[fam] = true
			}
		})
	}
	record := func(scenarioName string, want []string) {
		for _, a := range want {
			if proven[a] == "" {
				proven[a] = scenarioName
			}
		}
	}

	run("healthy", func(t *testing.T) *scenario {
		s := newScenario(t)
		s.rec.run(s.ctx)
		s.start("healthy-a", true, []string{"--leader-elect"})
		// Half of them start through a queue with room for all: a queue at work is no alert.
		require.NoError(t, s.c.Create(s.ctx, &v1alpha1.TaskQueue{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "roomy"},
			Spec: v1alpha1.TaskQueueSpec{Concurrency: 3}}))
		var names []string
		for i := range 6 {
			name := fmt.Sprintf("count-%d", i)
			s.task(name, "countdown", `{"from":150,"interval":"100ms","checkpointEvery":1}`, func(sp *v1alpha1.BackgroundTaskSpec) {
				sp.StallTimeout = &metav1.Duration{Duration: 10 * time.Second}
				if i%2 == 0 {
					sp.Queue = "roomy"
				}
			})
			names = append(names, name)
		}
		s.createSchedule("tick", v1alpha1.ConcurrencyAllow, `{"duration":"200ms","tick":"100ms"}`, nil)
		s.waitPhase(v1alpha1.PhaseRunning, names...)
		s.setState(v1alpha1.DesiredPaused, names[:3]...)
		s.waitPhase(v1alpha1.PhasePaused, names[:3]...)
		s.setState(v1alpha1.DesiredRunning, names[:3]...)
		s.hold(25 * time.Second)
		s.expect(nil)
		return s
	})

	run("postgresql stopped", func(t *testing.T) *scenario {
		if pg.External() {
			t.Skip("DATABASE_URL names a server this test cannot stop")
		}
		s := newScenario(t)
		s.rec.run(s.ctx)
		s.start("pg-a", true, []string{"--leader-elect"})
		names := s.tasks("count", 6, countdownParams)
		s.waitPhase(v1alpha1.PhaseRunning, names...)
		s.hold(3 * time.Second)
		require.NoError(t, pg.Stop(pgtest.StopFast))
		t.Cleanup(func() { _ = pg.Restart() })
		// Transitions the operator must hold for PostgreSQL: pauses, which the API server takes.
		s.setState(v1alpha1.DesiredPaused, names...)
		s.hold(15 * time.Second)
		require.NoError(t, pg.Restart())
		s.hold(3 * time.Second)
		want := []string{databaseUnreachable, transitionsNotRecorded}
		s.expect(want)
		record("PostgreSQL stopped for 15 s", want)
		return s
	})

	run("cut off from both backends", func(t *testing.T) *scenario {
		if pg.External() {
			t.Skip("DATABASE_URL names a server this test cannot stop")
		}
		s := newScenario(t)
		proxy, err := apiproxy.Start(kube.Config)
		require.NoError(t, err)
		t.Cleanup(func() { _ = proxy.Close() })
		cut := s.kubeconf + "-" + s.ns
		require.NoError(t, proxy.WriteKubeconfig(cut))
		s.rec.run(s.ctx)
		op := s.start("cut-a", true, []string{"--leader-elect"}, "KUBECONFIG="+cut)
		names := s.tasks("count", 4, countdownParams)
		s.waitPhase(v1alpha1.PhaseRunning, names...)
		s.hold(3 * time.Second)
		proxy.Block(true)
		require.NoError(t, pg.Stop(pgtest.StopFast))
		t.Cleanup(func() { _ = pg.Restart() })
		// Past the renew deadline it stops its tasks and exits; its container restarts (as the
		// Deployment's would) and waits, not ready, for either backend.
		select {
		case <-op.Exited():
		case <-time.After(30 * time.Second):
			t.Fatal("a replica cut off from both backends did not stop")
		}
		s.rec.unwatch("cut-a")
		s.start("cut-a", false, []string{"--leader-elect"}, "KUBECONFIG="+cut)
		s.hold(12 * time.Second)
		require.NoError(t, pg.Restart())
		proxy.Block(false)
		require.NoError(t, s.ops["cut-a"].WaitReady(s.ctx, time.Minute), "the restarted replica joins once the backends are back")
		s.hold(2 * time.Second)
		want := []string{replicaWithoutMembers, apiServerUnreachable, databaseUnreachable}
		s.expect(want, transitionsNotRecorded)
		record("API server and PostgreSQL cut off for 15 s", want)
		return s
	})

	run("overloaded", func(t *testing.T) *scenario {
		s := newScenario(t)
		s.rec.run(s.ctx)
		// Room for three runs of 64 KiB; five tasks that show a sign of life every 3 s but
		// promise one every second; a Forbid schedule every 2 s whose runs last 30 s, whose
		// skipped slots are its own choice and must not alert.
		s.start("busy-a", true, []string{"--leader-elect", "--memory-budget=192Ki"})
		for i := range 5 {
			s.task(fmt.Sprintf("slow-%d", i), "sleep", `{"duration":"90s","tick":"3s"}`, func(sp *v1alpha1.BackgroundTaskSpec) {
				sp.StallTimeout = &metav1.Duration{Duration: time.Second}
			})
		}
		s.createSchedule("busy", v1alpha1.ConcurrencyForbid, `{"duration":"30s","tick":"100ms"}`, nil)
		s.hold(30 * time.Second)
		want := []string{memoryBudgetSaturated, taskStalled}
		s.expect(want)
		record("memory budget full and tasks stalling (a Forbid schedule skipping slots alongside)", want)
		return s
	})

	run("leader away", func(t *testing.T) *scenario {
		s := newScenario(t)
		s.rec.run(s.ctx)
		s.start("away-a", true, []string{"--leader-elect"})
		s.createSchedule("tick", v1alpha1.ConcurrencyAllow, `{"duration":"100ms","tick":"100ms"}`, func(sp *v1alpha1.TaskScheduleSpec) {
			sp.StartingDeadlineSeconds = ptr.To[int64](1)
		})
		s.hold(6 * time.Second)
		// No operator for a few slots; a new pod (a new identity: new series) comes back and
		// records the slots it could not fire in time.
		s.stop("away-a")
		s.hold(8 * time.Second)
		s.start("away-b", true, []string{"--leader-elect"})
		s.hold(8 * time.Second)
		want := []string{scheduleSlotsMissed}
		s.expect(want)
		record("no operator for 8 s across slots every 2 s (startingDeadlineSeconds 1)", want)
		return s
	})

	run("tasks taken from a replica", func(t *testing.T) *scenario {
		s := newScenario(t)
		s.rec.run(s.ctx)
		s.start("fenced-a", true, []string{"--leader-elect"})
		names := s.tasks("count", 10, countdownParams)
		s.waitPhase(v1alpha1.PhaseRunning, names...)
		// Another owner takes the rows, as a process that wrongly believed this one gone
		// would (a split brain): its next checkpoints and transitions are refused.
		s.stealTasks("fenced-a")
		s.hold(8 * time.Second)
		want := []string{fencedWrites}
		s.expect(want)
		record("another owner took the replica's 10 running tasks in PostgreSQL", want)
		return s
	})

	run("role without privileges", func(t *testing.T) *scenario {
		s := newScenario(t)
		s.rec.run(s.ctx)
		s.start("lacking-a", false, []string{"--leader-elect"}, "DATABASE_URL="+s.noPrivilegeURL(), "MIGRATE_DATABASE_URL="+s.dbURL)
		s.hold(12 * time.Second)
		// Never ready, it never joined: no membership in either backend is what it reports.
		want := []string{databasePrivilegesLack}
		s.expect(want, replicaWithoutMembers, apiServerUnreachable, databaseUnreachable)
		record("a role not granted taskpilot_runtime", want)
		return s
	})

	for _, a := range monitoring.Alerts() {
		t.Logf("%s proven by: %s", a.Name, proven[a.Name])
	}
	for _, a := range monitoring.Alerts() {
		require.NotEmpty(t, proven[a.Name], "%s fired in no scenario", a.Name)
	}

	var missing []string
	for where, expr := range monitoring.Queries() {
		names, err := monitoring.MetricNames(expr)
		require.NoError(t, err)
		for _, n := range names {
			if !seen[n] {
				missing = append(missing, fmt.Sprintf("%s (%s)", n, where))
			}
		}
	}
	sort.Strings(missing)
	require.Empty(t, slices.Compact(missing), "metrics the alerts or the dashboard read that no operator exported")
}

// tasks creates n tasks of the countdown type named prefix-0..n-1.
func (s *scenario) tasks(prefix string, n int, params string) []string {
	s.t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		s.task(name, "countdown", params, nil)
		names = append(names, name)
	}
	return names
}

// createSchedule creates a TaskSchedule firing every two seconds a sleep task of params.
func (s *scenario) createSchedule(name string, policy v1alpha1.ConcurrencyPolicy, params string, set func(*v1alpha1.TaskScheduleSpec)) {
	s.t.Helper()
	ts := &v1alpha1.TaskSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: v1alpha1.TaskScheduleSpec{Schedule: scheduleEveryTwoSeconds, ConcurrencyPolicy: policy,
			SuccessfulHistoryLimit: ptr.To[int32](3),
			Template: v1alpha1.TaskTemplate{Spec: v1alpha1.BackgroundTaskSpec{TaskName: "sleep",
				Params: rawJSON(params)}}}}
	if set != nil {
		set(&ts.Spec)
	}
	require.NoError(s.t, s.c.Create(s.ctx, ts))
}
