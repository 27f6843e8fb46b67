package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskpilot/taskpilot/internal/plugin/kube"
	"github.com/taskpilot/taskpilot/internal/plugin/webui"
	"github.com/taskpilot/taskpilot/internal/taskdb"
)

func newUICommand(o *options) *cobra.Command {
	var (
		port          int
		allNamespaces bool
	)
	cmd := &cobra.Command{
		Use:   "ui [-n NAMESPACE | -A] [--port 8080]",
		Short: "Serve a live, read-only web view of tasks and their history on 127.0.0.1",
		Long: "Serve a read-only web view on 127.0.0.1: the task list with live updates from the watch, a\n" +
			"page per task with its conditions, Events and a timeline of its attempts, and a chart of\n" +
			"tasks by phase over the last hour. It uses your kubeconfig and DATABASE_URL, so your\n" +
			"permissions apply and nothing is exposed in the cluster. --port 0 picks a free port.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUI(cmd.Context(), o, port, allNamespaces)
		},
	}
	cmd.Flags().IntVar(&port, "port", 8080, "Port on 127.0.0.1 (0: any free port)")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "Show tasks of every namespace")
	return cmd
}

func runUI(ctx context.Context, o *options, port int, allNamespaces bool) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := o.client()
	if err != nil {
		return err
	}
	ns, scopeText := "", "all namespaces"
	if !allNamespaces {
		if ns, err = o.namespace(); err != nil {
			return err
		}
		scopeText = "namespace " + ns
	}

	opts := webui.Options{Events: webui.ClientEvents{Client: c}, Queues: webui.ClientQueues{Client: c}, Scope: scopeText, Namespace: ns}
	if o.database() == "" {
		opts.HistoryNote = "No DATABASE_URL (or --database-url): history and charts need the taskpilot database."
	} else {
		db, err := taskdb.Open(ctx, o.database())
		if err != nil {
			return err
		}
		defer db.Close()
		opts.History = db
	}

	tasks := webui.NewTaskCache(kube.TaskListWatch(c, ns, nil))
	go tasks.Run(ctx)
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	synced := tasks.WaitForSync(syncCtx)
	cancel()
	if !synced {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("could not list BackgroundTasks in %s within a minute (check the kubeconfig and your permissions)", scopeText)
	}
	opts.Tasks = tasks
	srv, err := webui.New(opts)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen (choose another --port): %w", err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Requests, the event streams included, end when the command does.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	fmt.Fprintf(o.streams.Out, "taskpilot ui: http://%s/ (%s; Ctrl-C to stop)\n", ln.Addr(), scopeText)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop serving: %w", err)
	}
	return nil
}
