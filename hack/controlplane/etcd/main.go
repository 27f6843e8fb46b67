// Command etcd is the upstream etcd server, built from Go modules so that the integration
// tests and `make dev` need no downloaded binary. See hack/build-controlplane.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
