#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the Debian 12 packages idnode needs to build, test and benchmark. Idempotent; needs root
# (or sudo). Skips apt entirely when everything is already installed.
set -euo pipefail

PKGS=(build-essential cmake pkg-config xxd curl python3 ca-certificates
      libssl-dev libevent-dev liblmdb-dev lmdb-utils libc-ares-dev libcmocka-dev libjansson-dev
      libsystemd-dev
      clang libclang-rt-14-dev)
# the Debian package (scripts/package.sh)
if [ "${HDL_PACKAGE_DEPS:-0}" = 1 ]; then
	PKGS+=(debhelper dpkg-dev lintian)
fi
# peers for the benchmark suite (bench/run.sh); optional for the build and tests
if [ "${HDL_BENCH_PEERS:-0}" = 1 ]; then
	PKGS+=(knot nginx-light)
fi
# tools some tests use when present (CI installs them: .ci/run): headless Chromium for the
# status page test (tests/integration/test_web.py), promtool (package prometheus) for
# `promtool check metrics` (tests/integration/test_metrics.py)
if [ "${HDL_TEST_TOOLS:-0}" = 1 ]; then
	PKGS+=(chromium prometheus)
fi

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
