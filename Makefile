# taskpilot Makefile, kubebuilder style. `make help` lists the targets.
#
# Tools are pinned and installed from the Go module proxy into ./bin (never downloaded as
# prebuilt binaries). The control plane used by tests and `make dev` (kube-apiserver, etcd) is
# built from Go modules by hack/build-controlplane.sh into ./bin/k8s.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s
export PATH := $(LOCALBIN):$(PATH)

CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.1
GOLANGCI_LINT_VERSION ?= v2.15.0

CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# The version stamped into binaries, images and the chart (hack/version.sh: the v* tag at HEAD,
# else v0.0.0-<commit>); a release passes VERSION=vX.Y.Z.
VERSION ?= $(shell hack/version.sh)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION_PKG := github.com/taskpilot/taskpilot/internal/version
GO_LDFLAGS := -X $(VERSION_PKG).stamped=$(VERSION) -X $(VERSION_PKG).stampedRevision=$(REVISION)

IMG ?= taskpilot:dev
TEST_FLAGS ?=
# One test package at a time (-p 1): the integration packages each run their own control plane,
# PostgreSQL and operator processes, and on a 2-core machine two of them at once starved the
# schedule tests' 1-2 s slots (a look late by a second records a slot CatchUp, not Refused). Each
# package still runs its own tests in parallel. On a machine with more cores, TEST_FLAGS=-p=4.
GO_TEST := go test -race -count=1 -p 1 $(TEST_FLAGS)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests under config/ from markers (and copy the CRDs into the chart).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="{./api/...,./controllers/...}" output:crd:artifacts:config=config/crd/bases
	cp config/crd/bases/*.yaml charts/taskpilot/crds/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods (zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail if committed CRD/RBAC/deepcopy files are stale.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/verify-generated.sh

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet (this module and examples/).
	go vet ./...
	cd examples && go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (config in .golangci.yml) on this module and examples/.
	$(GOLANGCI_LINT) run ./...
	cd examples && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...

.PHONY: api
api: ## Rewrite the public API listings in docs/api (a test fails while they are stale): review their diff.
	go run ./hack/apilist

.PHONY: monitoring
monitoring: ## Rewrite config/monitoring and the chart's alert and dashboard files from hack/monitoring (a test fails while they are stale).
	go run ./hack/monitoring/gen

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd from Go modules into bin/k8s (once; ~10 min cold).
	ENVTEST_ASSETS=$(ENVTEST_ASSETS) hack/build-controlplane.sh

.PHONY: test
test: envtest build $(KUSTOMIZE) vet lint verify-generated chromium ## Everything CI runs: vet, lint, stale-manifest check, unit + integration + e2e tests (-race), and the examples/ module against this checkout.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) KUSTOMIZE=$(KUSTOMIZE) $(GO_TEST) ./...
	cd examples && KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO_TEST) ./...

.PHONY: test-e2e
test-e2e: envtest build chromium ## End-to-end: drive `make dev` with kubectl, psql, kubectl taskpilot and a browser like a user; screenshots in bin/e2e.
	mkdir -p $(LOCALBIN)/e2e
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test -count=1 -v -artifacts -outputdir $(LOCALBIN)/e2e ./test/e2e/...

.PHONY: chromium
chromium: ## Install headless Chromium (Debian package) for the browser test, if missing.
	hack/install-chromium.sh

.PHONY: bench
bench: envtest build ## Measure taskpilot against the machine's apiserver and PostgreSQL ceilings; rewrites docs/benchmarks.md.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go run ./hack/bench --operator $(LOCALBIN)/taskpilot --report docs/benchmarks.md

# The chaos run needs the control plane binaries (make envtest, once); it does not depend on the
# envtest target so that a checkout newer than bin/k8s does not rebuild them on the way.
CHAOS_REPORT ?= docs/reliability.md
ARGS ?=

.PHONY: chaos
chaos: ## Reliability run (<= 20 min): faults against two replicas (outages of the API server and of PostgreSQL included), ten invariants (schedules, queues and a task of 2000 items included); rewrites docs/reliability.md. ARGS=--seed=N; make chaos-quick for a short run.
	go build -o $(LOCALBIN)/taskpilot-chaos ./test/witness/operator
	go build -o $(LOCALBIN)/chaos ./hack/chaos
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(LOCALBIN)/chaos --operator $(LOCALBIN)/taskpilot-chaos --report $(CHAOS_REPORT) $(ARGS)

.PHONY: chaos-sharded
chaos-sharded: ## The chaos run with three replicas sharing the tasks (--sharding); rewrites docs/reliability-sharded.md.
	$(MAKE) chaos ARGS="--sharded $(ARGS)" CHAOS_REPORT=docs/reliability-sharded.md

.PHONY: chaos-quick
chaos-quick: ## The chaos run's quick mode (about 2.5 min); report in bin/reliability-quick.md.
	$(MAKE) chaos ARGS="--quick $(ARGS)" CHAOS_REPORT=$(LOCALBIN)/reliability-quick.md

.PHONY: test-unit
test-unit: ## Fast tests only (no apiserver/Postgres needed): runner and pure reconcile logic.
	$(GO_TEST) -short ./...

##@ Build

.PHONY: build
build: ## Build the operator binary into bin/taskpilot.
	go build -trimpath -ldflags "$(GO_LDFLAGS)" -o $(LOCALBIN)/taskpilot .

.PHONY: build-plugin
build-plugin: ## Build the kubectl plugin into bin/kubectl-taskpilot.
	go build -trimpath -ldflags "$(GO_LDFLAGS)" -o $(LOCALBIN)/kubectl-taskpilot ./cmd/kubectl-taskpilot

.PHONY: install-plugin
install-plugin: ## Install the kubectl plugin (`kubectl taskpilot`) into $GOBIN (or ~/go/bin); it must be on PATH.
	go install -trimpath ./cmd/kubectl-taskpilot
	@bin=$$(go env GOBIN); echo "installed $${bin:-$$(go env GOPATH)/bin}/kubectl-taskpilot; try: kubectl taskpilot --help"

.PHONY: dev
dev: envtest build ## Bring up taskpilot locally: etcd + kube-apiserver + PostgreSQL (data in bin/dev) + the operator.
	go build -o $(LOCALBIN)/taskpilot-dev ./hack/dev
	$(LOCALBIN)/taskpilot-dev

.PHONY: run
run: manifests ## Run the operator against $KUBECONFIG and $DATABASE_URL (a real cluster and database).
	go run . --leader-elect=false --zap-devel

IMAGE_PLATFORMS ?= linux/amd64,linux/arm64

.PHONY: image
image: ## Build taskpilot's OCI image for $(IMAGE_PLATFORMS) into bin/image/taskpilot (an OCI layout, plus docker-loadable tarballs), without Docker.
	go run ./hack/image -version $(VERSION) -revision $(REVISION) -platforms $(IMAGE_PLATFORMS) \
		-out $(LOCALBIN)/image/taskpilot -tarballs $(LOCALBIN)/image

.PHONY: image-examples
image-examples: ## The same for the example team's operator (examples/cmd/linkcheck-operator), into bin/image/linkcheck-operator.
	go run ./hack/image -module examples -main ./cmd/linkcheck-operator -binary linkcheck-operator \
		-version $(VERSION) -revision $(REVISION) -platforms $(IMAGE_PLATFORMS) \
		-out $(LOCALBIN)/image/linkcheck-operator -tarballs $(LOCALBIN)/image

.PHONY: docker-build
docker-build: ## Build the same image with a Docker engine (Dockerfile), for one platform.
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMG) .

##@ Release

DIST ?= $(CURDIR)/dist
RELEASE_IMAGE ?= ghcr.io/taskpilot/taskpilot

.PHONY: release
release: $(KUSTOMIZE) ## Write a release into dist/: install.yaml, the chart, the images (OCI layout and tarballs), SHA256SUMS. VERSION=vX.Y.Z; nothing is pushed.
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "VERSION=$(VERSION) is not vX.Y.Z"; exit 1; }
	rm -rf $(DIST) && mkdir -p $(DIST)
	KUSTOMIZE=$(KUSTOMIZE) hack/image-overlay.sh $(RELEASE_IMAGE):$(VERSION) bin/release-overlay > $(DIST)/install.yaml
	go run ./hack/chart package -version $(VERSION) -app-version $(VERSION) -out $(DIST)
	go run ./hack/image -version $(VERSION) -revision $(REVISION) -platforms $(IMAGE_PLATFORMS) \
		-ref $(RELEASE_IMAGE):$(VERSION) -out $(DIST)/taskpilot-$(VERSION)-oci -tarballs $(DIST)
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C $(DIST) -cf $(DIST)/taskpilot-$(VERSION)-oci.tar taskpilot-$(VERSION)-oci
	rm -rf $(DIST)/taskpilot-$(VERSION)-oci
	cd $(DIST) && sha256sum -- * > SHA256SUMS && ls -l

##@ Deployment

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRD into the cluster of $KUBECONFIG.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests $(KUSTOMIZE) ## Remove the CRD (and every BackgroundTask) from the cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy the operator (config/default, admission policies included: Kubernetes 1.30+) with image $(IMG).
	KUSTOMIZE=$(KUSTOMIZE) hack/image-overlay.sh $(IMG) bin/deploy-overlay | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove the operator from the cluster.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

##@ Tools (pinned, installed into ./bin from the Go module proxy)

$(CONTROLLER_GEN):
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

$(KUSTOMIZE):
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

$(GOLANGCI_LINT):
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: controller-gen kustomize golangci-lint
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen.
kustomize: $(KUSTOMIZE) ## Install kustomize.
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint.

# go-install-tool installs package $(2) at version $(3) as $(1) (a versioned file name, so a
# version bump reinstalls) and links the plain name next to it.
define go-install-tool
@set -e; echo "installing $(2)@$(3) into $(LOCALBIN)"; mkdir -p $(LOCALBIN); \
tmp=$$(mktemp -d); GOBIN=$$tmp go install $(2)@$(3); \
mv $$tmp/$$(basename $(2) | sed 's/^v5$$/kustomize/') $(1); rmdir $$tmp; \
ln -sf $$(basename $(1)) $(LOCALBIN)/$$(basename $(1) -$(3))
endef
