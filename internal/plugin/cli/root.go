// Package cli is the kubectl plugin `kubectl taskpilot`: bulk lifecycle verbs, get and
// history, and the local web view. It takes the standard kubectl flags (--kubeconfig,
// --context, -n, ...) from k8s.io/cli-runtime, so it behaves like every other plugin, and acts
// with the user's own credentials and RBAC.
package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
	"github.com/taskpilot/taskpilot/internal/plugin/kube"
)

// options are the flags every command shares.
type options struct {
	streams genericiooptions.IOStreams
	kube    *genericclioptions.ConfigFlags
	// databaseURL is --database-url; database() falls back to $DATABASE_URL.
	databaseURL string
}

// NewRootCommand is `kubectl taskpilot` with all its subcommands.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{streams: streams, kube: genericclioptions.NewConfigFlags(true)}
	cmd := &cobra.Command{
		Use:   "kubectl-taskpilot",
		Short: "Act on many BackgroundTasks at once and see what happened to them",
		Long: `kubectl taskpilot drives taskpilot BackgroundTasks (kubectl get bgt) in bulk and shows their
history from PostgreSQL.

  kubectl taskpilot pause -l batch=nightly         # every matching task, one patch each
  kubectl taskpilot resume --all -n reports --wait  # and wait until they run again
  kubectl taskpilot restart countdown               # restartGeneration + 1
  kubectl taskpilot retry-failed mailing            # run again the items that did not succeed
  kubectl taskpilot get -A                          # kubectl get bgt plus the last transition
  kubectl taskpilot history countdown -o yaml       # every transition, from PostgreSQL
  kubectl taskpilot history bts/nightly             # every slot of a TaskSchedule, and why
  kubectl taskpilot run-now nightly                 # one run of a TaskSchedule now
  kubectl taskpilot types checksum                  # a task type's params, with an example
  kubectl taskpilot queue pause imports --until 2h  # start nothing of a TaskQueue for two hours
  kubectl taskpilot queue                           # the TaskQueues: running, pending, oldest wait
  kubectl taskpilot ui                              # a live, read-only web view on 127.0.0.1

Changes are merge patches of spec under the field manager "kubectl-taskpilot", made with your
own kubeconfig and permissions. History comes from DATABASE_URL (or --database-url).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Help and usage say `kubectl taskpilot`, the way people call it.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl taskpilot"},
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	o.kube.AddFlags(cmd.PersistentFlags())
	// The default is not $DATABASE_URL itself: --help prints defaults, and the URL holds a
	// password. database() reads the environment when a command needs it.
	cmd.PersistentFlags().StringVar(&o.databaseURL, "database-url", "",
		"PostgreSQL URL of the taskpilot database, for history (default $DATABASE_URL)")
	for _, v := range bulk.Verbs() {
		cmd.AddCommand(newVerbCommand(o, v))
	}
	cmd.AddCommand(newGetCommand(o), newHistoryCommand(o), newRunNowCommand(o), newTypesCommand(o), newUICommand(o), newQueueCommand(o))
	return cmd
}

// database is --database-url, or $DATABASE_URL; empty without either.
func (o *options) database() string {
	if o.databaseURL != "" {
		return o.databaseURL
	}
	return os.Getenv("DATABASE_URL")
}

// client connects to the cluster of the kubeconfig flags.
func (o *options) client() (client.WithWatch, error) {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	// client-go's default of 5 requests/s would make a bulk verb on 100 tasks take 20s; the
	// verbs bound their requests in flight (--concurrency) instead, and the API server's
	// priority and fairness protects it.
	cfg.QPS, cfg.Burst = 100, 200
	return kube.NewClient(cfg)
}

// namespace is -n, or the kubeconfig context's namespace, or "default".
func (o *options) namespace() (string, error) {
	ns, _, err := o.kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("find the namespace: %w", err)
	}
	return ns, nil
}
