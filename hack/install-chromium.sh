#!/usr/bin/env bash
# Makes sure headless Chromium is there for the browser end-to-end test (test/e2e), which
# `make test` runs: CI starts on a fresh machine with only Go, gcc, kubectl and PostgreSQL. As
# root it installs Debian's chromium package; otherwise it says how, and the test skips itself
# (outside CI) when Chromium is missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [[ -n "${CHROMIUM:-}" ]]; then
	exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
	echo "install-chromium: chromium is missing; install it with: sudo apt-get install -y chromium (the browser test skips without it, or fails when CI is set)" >&2
	exit 0
fi
echo "install-chromium: installing Debian's chromium package for the browser test"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
