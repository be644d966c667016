#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build and run every test. Usage: scripts/test.sh [--asan] [ctest args...]
#   (default)  build/ with -Werror, all tests (unit, capture, fuzz-corpus replay, integration)
#   --asan     build-asan/ with ASan+UBSan, all tests again
#   --tsan     build-tsan/ with ThreadSanitizer: the tests of the threaded resolution path (the
#              replay scenarios, the shared cache and flight table, the three-node test with
#              every idnoded under TSan); other ctest arguments replace that selection
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

dir=build
opts=(-DHDL_WERROR=ON)
if [ "${1:-}" = "--asan" ]; then
	shift
	dir=build-asan
	opts+=(-DHDL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
if [ "${1:-}" = "--tsan" ]; then
	shift
	dir=build-tsan
	opts+=(-DHDL_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66"
	[ $# -gt 0 ] || set -- -R 'replay/|unit/test_dcache|unit/test_dflight|integration/test_three_nodes'
fi
cmake -S . -B "$dir" "${opts[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" "$@"
