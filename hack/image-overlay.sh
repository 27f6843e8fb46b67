#!/usr/bin/env bash
# Renders config/default (or the kustomization given as $3) with the operator image set to $1,
# through a throwaway overlay in $2 (under the repository: kustomize refuses absolute paths),
# so nothing committed is edited: config/manager's image name is what overlays such as
# examples/config match on. Prints the manifests.
#   hack/image-overlay.sh registry.example/taskpilot:v0.1.0 bin/overlay [config/default]
set -euo pipefail
image=${1:?image}
dir=${2:?overlay directory}
base=${3:-config/default}
root=$(cd "$(dirname "$0")/.." && pwd)
kustomize=${KUSTOMIZE:-$root/bin/kustomize}
mkdir -p "$root/$dir"
rel=$(realpath --relative-to="$root/$dir" "$root/$base")
name=${image%:*}
tag=${image##*:}
if [[ $name == "$image" || $tag == *"/"* ]]; then name=$image; tag=latest; fi
cat >"$root/$dir/kustomization.yaml" <<YAML
resources:
- $rel
images:
- name: taskpilot
  newName: $name
  newTag: $tag
YAML
"$kustomize" build "$root/$dir"
