package witness_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskpilot/taskpilot/api/lifecycle"
	"github.com/taskpilot/taskpilot/internal/engine"
	"github.com/taskpilot/taskpilot/runner"
	"github.com/taskpilot/taskpilot/test/pgtest"
	"github.com/taskpilot/taskpilot/test/witness"
)

// srv is the PostgreSQL server shared by this package's tests.
var srv *pgtest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(pgtest.Main(m, &srv))
}

// terminal closes done at the first terminal transition.
type terminal struct{ done chan engine.Transition }

func (s terminal) Transition(t engine.Transition) {
	if t.To.Terminal() {
		s.done <- t
	}
}

// runOnce runs one witness task to its end and returns the terminal transition.
func runOnce(t *testing.T, rec *witness.Recorder, params string, attempt int) engine.Transition {
	t.Helper()
	reg := runner.NewRegistry()
	if err := witness.Register(reg, rec); err != nil {
		t.Fatal(err)
	}
	sink := terminal{done: make(chan engine.Transition, 1)}
	r, err := engine.New(engine.Options{Registry: reg, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = r.Start(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	<-r.Started()
	if err := r.StartTask("uid-1", engine.StartSpec{TaskName: witness.TaskType, Params: json.RawMessage(params), Attempt: attempt}); err != nil {
		t.Fatal(err)
	}
	select {
	case tr := <-sink.done:
		return tr
	case <-time.After(30 * time.Second):
		t.Fatal("the witness task did not end")
	}
	return engine.Transition{}
}

func TestWitnessRecordsEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	url := srv.NewDatabase(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := witness.CreateTable(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rec, err := witness.NewRecorder(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()

	if tr := runOnce(t, rec, `{"steps":3,"interval":"10ms","checkpointEvery":1,"failAttempts":1,"failAtStep":1}`, 1); tr.To != lifecycle.Failed {
		t.Fatalf("attempt 1 must fail at step 1, got %s", tr.To)
	}
	if tr := runOnce(t, rec, `{"steps":3,"interval":"10ms","checkpointEvery":1,"failAttempts":1,"failAtStep":1}`, 2); tr.To != lifecycle.Finished {
		t.Fatalf("attempt 2 must finish, got %s: %s", tr.To, tr.Message)
	}
	execs, err := witness.Load(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	es := execs["uid-1"]
	if len(es) != 2 {
		t.Fatalf("want two executions, got %d", len(es))
	}
	failed, done := es[0], es[1]
	if failed.Attempt != 1 || len(failed.Marks) != 2 || !failed.Ended || failed.Completed || failed.Detail == "" {
		t.Fatalf("attempt 1: %+v", failed)
	}
	if done.Attempt != 2 || len(done.Marks) != 3 || !done.Ended || !done.Completed || done.BusyUntil() != done.End {
		t.Fatalf("attempt 2: %+v", done)
	}
	for i, m := range done.Marks {
		if m.Step != i || m.At.Before(done.Start) {
			t.Fatalf("mark %d: %+v", i, m)
		}
	}
}

// TestAMarkWrittenTwiceIsOneMark: a mark whose insert is retried after it was committed (the
// client saw an error) stays one mark, with the later time: two rows would count as a step done
// twice at the same time.
func TestAMarkWrittenTwiceIsOneMark(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	url := srv.NewDatabase(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := witness.CreateTable(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rec, err := witness.NewRecorder(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	if err := rec.MarkTwice(ctx, "uid-2", "exec-2", 3); err != nil {
		t.Fatal(err)
	}
	execs, err := witness.Load(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if es := execs["uid-2"]; len(es) != 1 || len(es[0].Marks) != 1 {
		t.Fatalf("want one execution with one mark, got %+v", es)
	}
}
