// Command linkcheck-api is the web service that starts link checks: it creates BackgroundTasks
// with taskpilot's typed client and reports on them (see linkcheck.API).
//
//	linkcheck-api --namespace=default --listen=127.0.0.1:8090
//	curl -X POST localhost:8090/checks -H 'Idempotency-Key: nightly-2026-12-04' \
//	     -d '{"urls":["https://example.com/"]}'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/taskpilot/taskpilot/examples/linkcheck"
	"github.com/taskpilot/taskpilot/operator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to serve on")
	namespace := flag.String("namespace", "default", "namespace of the checks' BackgroundTasks")
	flag.Parse()
	if err := run(ctrl.SetupSignalHandler(), *listen, *namespace); err != nil {
		fmt.Fprintln(os.Stderr, "linkcheck-api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, namespace string) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	c, err := operator.NewClient(ctx, cfg, operator.ClientOptions{Namespace: namespace})
	if err != nil {
		return err
	}
	defer c.Close()
	srv := &http.Server{Addr: listen, Handler: linkcheck.API(c), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		// The server's own context has ended: the shutdown gets a few seconds of its own.
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
