#!/usr/bin/env bash
# Prints the version `make` stamps into binaries, images and the chart: the v* tag at HEAD, or
# else v0.0.0-<the commit>, with -dirty when the tree has uncommitted changes. A release passes
# VERSION=vX.Y.Z to make instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "v0.0.0-devel"
	exit 0
fi
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
	version=$tag
else
	version="v0.0.0-$(git rev-parse --short=12 HEAD)"
fi
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	version="$version-dirty"
fi
echo "$version"
