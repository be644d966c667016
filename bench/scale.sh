#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/scale.sh — B7: B4 UDP resolve with 1, 2, 4, 8 and 16 idnoded workers; appends the scaling
# table to docs/benchmarks.md. Meant for a machine with >= 16 cores (run by hand); on a smaller
# one it skips worker counts above the CPU count. When W equals the CPU count the load generator
# shares the server's CPUs (the table says so), so that row understates the server.
#
#   bench/scale.sh [--count N] [-d SECONDS] [--runs N] [--workers "1 2 4 8 16"]
#                  [--build DIR] [--no-append] [--out FILE] [--keep]
#
# Server: idnoded --workers W pinned to CPUs 0..W-1 (SO_REUSEPORT sockets, one per worker).
# Load: idnode-bench on the remaining CPUs with up to W threads and 256 source ports (>= 128
# flows so the kernel's reuseport hash spreads them). Reported: wall replies/s (closed loop,
# median of runs), replies per server CPU-second, and scaling efficiency rate(W) / (W * rate(1)).
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${HDL_BUILD_DIR:-$SRC/build}
COUNT=1000000 DUR=10 RUNS=3 WORKERS="1 2 4 8 16" APPEND=1 KEEP=0
OUT=$SRC/docs/benchmarks.md
while [ $# -gt 0 ]; do
	case "$1" in
	--count) COUNT=$2; shift ;;
	-d) DUR=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--workers) WORKERS=$2; shift ;;
	--build) BUILD=$2; shift ;;
	--no-append) APPEND=0 ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h|--help) sed -n '3,16p' "$0"; exit 0 ;;
	*) echo "scale.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
BENCH=$BUILD/idnode-bench IDNODED=$BUILD/idnoded IDNODE=$BUILD/idnode
for b in "$BENCH" "$IDNODED" "$IDNODE"; do
	[ -x "$b" ] || { echo "scale.sh: $b is missing" >&2; exit 3; }
done
NCPU=$(nproc)
TMP=$(mktemp -d /tmp/idnode-scale.XXXXXX)
SRV_PID=
log() { echo "[scale.sh $(date -u +%H:%M:%S)] $*" >&2; }
stop_srv() {
	[ -n "$SRV_PID" ] || return 0
	kill -TERM "$SRV_PID" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}
cleanup() {
	stop_srv
	[ "$KEEP" = 1 ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

log "generating and importing $COUNT identifiers"
mkdir -p "$TMP/db" "$TMP/res"
"$IDNODE" gen --prefix 88.100.1 --count "$COUNT" | "$IDNODE" import --db "$TMP/db" - >"$TMP/import.log" 2>&1 \
	|| { log "import failed: $(tail -3 "$TMP/import.log")"; exit 3; }
"$IDNODE" gen --prefix 88.100.1 --count "$COUNT" --keys-only >"$TMP/keys.txt"

ROWS=()
for W in $WORKERS; do
	if [ "$W" -gt "$NCPU" ]; then
		log "skipping $W workers: only $NCPU CPUs"
		continue
	fi
	P=$(port) H=$(port)
	SRV_CPUS="0-$((W - 1))"
	GEN_N=$((NCPU - W))
	[ "$GEN_N" -lt 1 ] && GEN_N=1
	GEN_CPUS="$W-$((NCPU - 1))"
	[ "$W" -ge "$NCPU" ] && GEN_CPUS="0-$((NCPU - 1))"
	T=$W
	[ "$T" -gt "$GEN_N" ] && T=$GEN_N
	taskset -c "$SRV_CPUS" "$IDNODED" --db "$TMP/db" --listen "127.0.0.1:$P" --http "127.0.0.1:$H" \
		--home 88.100.1 --workers "$W" >"$TMP/idnoded.$W.log" 2>&1 &
	SRV_PID=$!
	ok=0
	for _ in $(seq 1 100); do
		"$BENCH" -s "127.0.0.1:$P" -f "$TMP/keys.txt" -n 1 -d 1 --timeout 300 >/dev/null 2>&1 && { ok=1; break; }
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.2
	done
	[ $ok = 1 ] || { log "idnoded --workers $W did not answer"; stop_srv; exit 1; }
	echo "$SRV_CPUS / $GEN_CPUS" >"$TMP/res/w$W.cpus"
	for run in $(seq 1 "$RUNS"); do
		taskset -c "$GEN_CPUS" "$BENCH" -s "127.0.0.1:$P" -f "$TMP/keys.txt" -T "$T" --conns 256 \
			-c $((128 * W)) -d "$DUR" --warmup 2 -P "$SRV_PID" --json >"$TMP/res/w$W.$run.json" \
			|| log "run $run with $W workers: no replies"
		python3 -m json.tool "$TMP/res/w$W.$run.json" >/dev/null 2>&1 || { log "run $run: no parsable report"; exit 1; }
	done
	stop_srv
	log "workers $W done"
done

TABLE=$(python3 - "$TMP/res" <<'PY'
import glob, json, os, re, statistics, sys
res = {}
for p in glob.glob(os.path.join(sys.argv[1], "w*.json")):
    w = int(re.match(r"w(\d+)\.", os.path.basename(p)).group(1))
    d = json.load(open(p))
    res.setdefault(w, []).append(d)
base = None
print("| workers | server / load CPUs | wall replies/s (median [min–max]) | replies / server CPU-s | p99 µs | efficiency |")
print("|---|---|---|---|---|---|")
for w in sorted(res):
    rates = [d["achieved_rate"] for d in res[w]]
    cpu = [((d.get("server") or {}).get("replies_per_cpu_s") or 0) for d in res[w]]
    p99 = statistics.median(d["latency_us"]["p99"] for d in res[w])
    m = statistics.median(rates)
    if base is None and w == 1:
        base = m
    eff = f"{m / (w * base):.2f}" if base else "–"
    cpus = open(os.path.join(sys.argv[1], f"w{w}.cpus")).read().strip()
    print(f"| {w} | {cpus} | {m:,.0f} [{min(rates):,.0f}–{max(rates):,.0f}] | {statistics.median(cpu):,.0f} | {p99:.0f} | {eff} |")
PY
)
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
HEAD="### Scaling (B7) — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT

Machine: $MODEL, $NCPU CPUs, kernel $(uname -r). B4 UDP resolve, $COUNT identifiers, uniform keys,
closed loop; idnoded --workers W pinned to CPUs 0..W-1, idnode-bench on the other CPUs with 256
source ports; $RUNS run(s) × $DUR s per row. Target: efficiency ≥ 0.9 up to 8 workers.
"
echo "$HEAD"
echo "$TABLE"
if [ "$APPEND" = 1 ]; then
	printf '\n%s\n%s\n' "$HEAD" "$TABLE" >>"$OUT"
	log "appended to $OUT"
fi
