#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/b6_ab.sh — B6 (durable creates over TCP), A/B between two idnoded builds: each round
# starts A and B in turn (pinned to CPU 0, --workers 1, a fresh database from seeds/demo.jsonl
# on the same disk), drives them with idnode-bench (CPU 1: --op create, an IDIS login per
# connection, CONNS x DEPTH in flight) and stops them by PID. Prints per round and the medians:
# server CPU per create (the figure that does not depend on the disk), durable creates/s and the
# ack p50 / p99 (those do: compare them within a round). Figures in docs/benchmarks.md, "B6".
#
#   bench/b6_ab.sh A_IDNODED B_IDNODED [ROUNDS] [SECONDS] [CONNS] [DEPTH] [full|periodic]
set -u
[ $# -ge 2 ] || { sed -n 3,10p "$0"; exit 2; }
A=$1 B=$2 ROUNDS=${3:-3} DUR=${4:-5} CONNS=${5:-16} DEPTH=${6:-8} SYNC=${7:-full}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HDL_BUILD_DIR:-$SRC/build}
TMP=$(mktemp -d /tmp/idnode-b6-ab.XXXXXX)
PID=
fp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
stop() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	PID=
}
trap 'stop; rm -rf "$TMP"' EXIT
printf 'write_sync = %s\n' "$SYNC" >"$TMP/node.conf"
for run in $(seq 1 "$ROUNDS"); do
	for v in a b; do
		bin=$A
		[ $v = b ] && bin=$B
		rm -rf "$TMP/db"
		"$BUILD/idnode" import --db "$TMP/db" --home 88.100.1 "$SRC/seeds/demo.jsonl" >/dev/null 2>&1
		port=$(fp)
		taskset -c 0 "$bin" -c "$TMP/node.conf" --db "$TMP/db" --listen "127.0.0.1:$port" \
			--http "127.0.0.1:$(fp)" --home 88.100.1 --workers 1 >"$TMP/node.$v.$run.log" 2>&1 &
		PID=$!
		for _ in $(seq 1 50); do
			"$BUILD/idnode" resolve -s "127.0.0.1:$port" --tcp --timeout 200 88.100.1/ADMIN \
				>/dev/null 2>&1 && break
			sleep 0.2
		done
		taskset -c 1 "$BUILD/idnode-bench" -s "127.0.0.1:$port" --proto tcp --op create \
			--auth 300:0.NA/88.100.1 --seckey-file "$SRC/seeds/demo-admin.secret" \
			--pattern '88.100.1/ab-%s' --range 1-100000000 --conns "$CONNS" --depth "$DEPTH" \
			--timeout 10000 -d "$DUR" --warmup 1 -P "$PID" --json >"$TMP/$v.$run.json" 2>/dev/null
		stop
	done
done
python3 - "$TMP" "$ROUNDS" "$SYNC" <<'PY'
import json, os, statistics, sys
tmp, rounds, sync = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {"a": [], "b": []}
for r in range(1, rounds + 1):
    for v in ("a", "b"):
        try:
            d = json.load(open(os.path.join(tmp, "%s.%d.json" % (v, r))))
            w, s = d["write"], d["server"]
            row = (1e6 / s["replies_per_cpu_s"], w["acks_per_s"], w["ack_p50_us"], w["ack_p99_us"])
        except Exception as e:
            print("round %d %s: no report (%s)" % (r, v, e))
            continue
        rows[v].append(row)
        print("round %d %s (write_sync %s): %.1f us server CPU per create, %.0f creates/s, "
              "ack p50 %.0f us p99 %.0f us" % ((r, v, sync) + row))
for v in ("a", "b"):
    if rows[v]:
        print("median %s: %.1f us CPU per create, %.0f creates/s, p50 %.0f us, p99 %.0f us" % (
            (v,) + tuple(statistics.median(x[i] for x in rows[v]) for i in range(4))))
PY
