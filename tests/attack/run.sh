#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The standing attack suite: every tests/attack/atk_*.py scenario against a real idnoded on
# loopback. Each scenario starts its own node, attacks it (bounded in count, rate and time),
# asserts its figure and prints it as a "FIGURE <name>: ..." line; exit 0 = held.
#   tests/attack/run.sh            short form (what the README's test command runs via ctest)
#   tests/attack/run.sh --long     full form (more connections, longer floods)
#   tests/attack/run.sh [--long] NAME...   only the named scenarios (atk_NAME.py)
set -u
here=$(cd "$(dirname "$0")" && pwd)
long=()
if [ "${1:-}" = "--long" ]; then
	long=(--long)
	shift
fi
if [ $# -gt 0 ]; then
	scen=()
	for n in "$@"; do scen+=("$here/atk_$n.py"); done
else
	scen=("$here"/atk_*.py)
fi
fail=0
for s in "${scen[@]}"; do
	[ -f "$s" ] || { echo "no scenario $s"; fail=1; continue; }
	name=$(basename "$s" .py)
	echo "== $name ${long[*]:-}"
	if ! python3 "$s" "${long[@]}"; then
		echo "FAILED: $name"
		fail=1
	fi
done
exit $fail
