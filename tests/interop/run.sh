#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Compile tests/interop/HdlInteropCheck.java against a Handle.Net Java client library and run it.
# Not a ctest: the library is third-party code that is never part of this repository; see
# tests/interop/README.md for how to obtain and build it.
#
#   HNET_CLASSPATH=... tests/interop/run.sh net --port P --http-port H --handle 88.100.1/x
#   HNET_CLASSPATH=... tests/interop/run.sh decode FILE.hex...
#   HNET_CLASSPATH=... tests/interop/run.sh daemon BUILD_DIR [SEED.jsonl] [HANDLE]
#       imports SEED (default seeds/demo.jsonl, else `idnode gen` data) into a fresh LMDB directory with BUILD_DIR/idnode,
#       starts BUILD_DIR/idnoded on free loopback ports, runs `net` against it, stops it by PID.
#       HANDLE defaults to the first ordinary record of SEED; the homed prefix is its prefix
#       (override with HDL_INTEROP_HOME).
#
# Exit status: that of HdlInteropCheck (0 all passed, 1 a check failed, 2 usage); 0 with
# "skipped: HNET_CLASSPATH not set" when no library is configured.
set -eu

if [ -z "${HNET_CLASSPATH:-}" ]; then
	echo "skipped: HNET_CLASSPATH not set"
	exit 0
fi
for tool in javac java; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skipped: $tool not found"
		exit 0
	fi
done

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/hdl-interop.XXXXXX")
daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

javac -nowarn -d "$work/classes" -cp "$HNET_CLASSPATH" "$here/HdlInteropCheck.java"
check() {
	java -cp "$work/classes:$HNET_CLASSPATH" HdlInteropCheck "$@"
}

if [ "${1:-}" != daemon ]; then
	check "$@"
	exit $?
fi

# ---- daemon mode ----
shift
build=${1:?usage: run.sh daemon BUILD_DIR [SEED.jsonl] [HANDLE]}
seed=${2:-}
handle=${3:-}
[ -x "$build/idnoded" ] || { echo "run.sh: $build/idnoded not built" >&2; exit 2; }
[ -x "$build/idnode" ] || { echo "run.sh: $build/idnode not built" >&2; exit 2; }
if [ -z "$seed" ]; then
	seed=$top/seeds/demo.jsonl
	if [ ! -r "$seed" ]; then
		# no demo seed in this checkout: a small generated data set instead
		seed=$work/gen.jsonl
		"$build/idnode" gen --count 24 >"$seed"
	fi
fi
[ -r "$seed" ] || { echo "run.sh: no seed file $seed" >&2; exit 2; }
if [ -z "$handle" ]; then
	# first record of the seed file: its "handle" member
	# the first record that is not a prefix record (0.NA/...) nor the admin handle
	handle=$(python3 -c 'import json,sys
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip():
        continue
    h = json.loads(line)["handle"]
    if "/" in h and not h.upper().startswith("0.NA/") and not h.upper().endswith("/ADMIN"):
        print(h)
        break' "$seed")
fi
[ -n "$handle" ] || { echo "run.sh: no handle given and none found in $seed" >&2; exit 2; }
home=${HDL_INTEROP_HOME:-${handle%%/*}}

# Two distinct free loopback ports: one for UDP+TCP, one for HTTP.
ports=$(python3 - <<'EOF'
import socket
out = []
while len(out) < 2:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close()
        continue
    u.close()
    t.close()
    if p not in out:
        out.append(p)
print(*out)
EOF
)
set -- $ports
port=$1
http=$2

"$build/idnode" import --db "$work/db" --home "$home" "$seed" >"$work/import.log" 2>&1 || {
	echo "run.sh: import failed:" >&2
	cat "$work/import.log" >&2
	exit 1
}
"$build/idnoded" --db "$work/db" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" \
	--home "$home" --workers 1 >"$work/idnoded.log" 2>&1 &
daemon_pid=$!

# wait (at most ~5 s) until the TCP port accepts connections
i=0
until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2).close()" \
	2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 50 ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
		echo "run.sh: idnoded did not come up; its log:" >&2
		cat "$work/idnoded.log" >&2
		exit 1
	fi
	sleep 0.1
done

echo "idnoded pid $daemon_pid on 127.0.0.1:$port (udp+tcp), 127.0.0.1:$http (http); handle $handle"
rc=0
check net --host 127.0.0.1 --port "$port" --http-port "$http" --handle "$handle" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "---- idnoded log (tail) ----"
	tail -n 40 "$work/idnoded.log"
fi
exit "$rc"
