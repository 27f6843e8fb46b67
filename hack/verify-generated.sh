#!/usr/bin/env bash
# Fails when the committed generated files (CRD, RBAC role, deepcopy) differ from what
# controller-gen produces from the current markers. Fix: `make manifests generate`, commit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
gen=${CONTROLLER_GEN:?set CONTROLLER_GEN to the controller-gen binary}
tmp=$(mktemp -d)
deepcopy=api/v1alpha1/zz_generated.deepcopy.go
cp "$deepcopy" "$tmp/deepcopy.committed.go"
# Deepcopy is generated in place: always put the committed file back.
trap 'cp "$tmp/deepcopy.committed.go" "$root/$deepcopy"; rm -rf "$tmp"' EXIT

stale=0
check() { # $1 generated, $2 committed, $3 name
  if ! diff -u "$2" "$1" >"$tmp/diff" 2>&1; then
    echo "stale generated file: $3 (run: make manifests generate)"
    head -40 "$tmp/diff"
    stale=1
  fi
}

"$gen" rbac:roleName=manager-role crd paths="{./api/...,./controllers/...}" \
  output:crd:artifacts:config="$tmp/crd" output:rbac:artifacts:config="$tmp/rbac"
for f in "$tmp"/crd/*.yaml; do
  check "$f" "config/crd/bases/$(basename "$f")" "config/crd/bases/$(basename "$f")"
  check "$f" "charts/taskpilot/crds/$(basename "$f")" "charts/taskpilot/crds/$(basename "$f")"
done
check "$tmp/rbac/role.yaml" config/rbac/role.yaml config/rbac/role.yaml

"$gen" object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
cp "$deepcopy" "$tmp/deepcopy.generated.go"
check "$tmp/deepcopy.generated.go" "$tmp/deepcopy.committed.go" "$deepcopy"

if [[ $stale == 0 ]]; then echo "generated files are up to date"; fi
exit $stale
