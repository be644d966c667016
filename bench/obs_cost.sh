#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/obs_cost.sh — what the metrics and the usage statistics cost on the B4 path (UDP
# resolutions, response cache off, one worker pinned to CPU 0, idnode-bench on CPU 1, as in
# bench/run.sh). Three variants of idnoded, each on its own copy of the database, run side by
# side in each round (all three servers on CPU 0, their three load generators on CPU 1), so
# that whatever else the box does hits them alike:
#   off      no metrics_listen (the default), statistics on (the default)
#   metrics  metrics_listen set (latency histograms on) and scraped once a second during the run
#   nostats  statistics off (stats = no), metrics off
# The figure is replies per server CPU-second (all threads, metrics listener included); the
# ratios metrics/off and off/nostats are taken per round, then the median over the rounds.
#
#   bench/obs_cost.sh [--runs N] [-d SECONDS] [--count N] [--build DIR] [--append]
#
# --append adds the table to docs/benchmarks.md. Every process started here is stopped by PID on
# exit. Loopback only.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${HDL_BUILD_DIR:-$SRC/build}
RUNS=5 DUR=8 WARM=2 COUNT=1000000 APPEND=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift ;;
	-d) DUR=$2; shift ;;
	--count) COUNT=$2; shift ;;
	--build) BUILD=$2; shift ;;
	--append) APPEND=1 ;;
	-h|--help) sed -n '3,16p' "$0"; exit 0 ;;
	*) echo "obs_cost.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
BENCH=$BUILD/idnode-bench IDNODED=$BUILD/idnoded IDNODE=$BUILD/idnode
for b in "$BENCH" "$IDNODED" "$IDNODE"; do
	[ -x "$b" ] || { echo "obs_cost.sh: $b is missing (build first)" >&2; exit 3; }
done
SRV_CPU=0 GEN_CPU=0
[ "$(nproc)" -ge 2 ] && SRV_CPU=${BENCH_SERVER_CPU:-0} GEN_CPU=${BENCH_GEN_CPU:-1}

TMP=$(mktemp -d /tmp/idnode-obscost.XXXXXX)
PIDS=()
log() { echo "[obs_cost $(date -u +%H:%M:%S)] $*" >&2; }
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
cleanup() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r P1 H1 P2 H2 P3 H3 MPORT < <(python3 - <<'PY'
import socket
out, socks = [], []
for _ in range(7):
    t = socket.socket()
    t.bind(("127.0.0.1", 0))
    out.append(t.getsockname()[1])
    socks.append(t)
print(*out)
PY
)

log "generating and importing $COUNT identifiers"
"$IDNODE" gen --prefix 88.100.1 --count "$COUNT" >"$TMP/data.jsonl" || exit 3
"$IDNODE" gen --prefix 88.100.1 --count "$COUNT" --keys-only >"$TMP/keys.txt" || exit 3
mkdir -p "$TMP/db"
"$IDNODE" import --db "$TMP/db" --home 88.100.1 "$TMP/data.jsonl" >"$TMP/import.log" 2>&1 || exit 3
rm -f "$TMP/data.jsonl"
# idnoded refuses a database another idnoded holds: each variant gets a copy
cp -a "$TMP/db" "$TMP/db.metrics"
cp -a "$TMP/db" "$TMP/db.nostats"
mv "$TMP/db" "$TMP/db.off"
printf 'metrics_listen = 127.0.0.1:%s\n' "$MPORT" >"$TMP/metrics.conf"
printf 'stats = no\n' >"$TMP/nostats.conf"
: >"$TMP/off.conf"
declare -A PORT=([off]=$P1 [metrics]=$P2 [nostats]=$P3) HTTP=([off]=$H1 [metrics]=$H2 [nostats]=$H3)
declare -A PID

# start VARIANT ROUND: idnoded on CPU 0 until its ready line
start() {
	local v=$1 r=$2 i
	taskset -c "$SRV_CPU" "$IDNODED" -c "$TMP/$v.conf" --db "$TMP/db.$v" \
		--listen "127.0.0.1:${PORT[$v]}" --http "127.0.0.1:${HTTP[$v]}" --home 88.100.1 \
		--workers 1 --cache-size 0 >"$TMP/idnoded.$v.$r.log" 2>&1 &
	PID[$v]=$!
	PIDS+=("${PID[$v]}")
	for i in $(seq 1 300); do
		grep -q "idnoded ready" "$TMP/idnoded.$v.$r.log" 2>/dev/null && return 0
		kill -0 "${PID[$v]}" 2>/dev/null || break
		sleep 0.2
	done
	log "idnoded ($v) did not start: $(tail -3 "$TMP/idnoded.$v.$r.log")"
	return 1
}

for r in $(seq 1 "$RUNS"); do
	for v in off metrics nostats; do start "$v" "$r" || exit 3; done
	# a scraper, once a second, for the whole cell (its cost is the node's: the listener)
	(for i in $(seq 1 $((DUR + WARM + 5))); do
		curl -s -o /dev/null "http://127.0.0.1:$MPORT/metrics"
		sleep 1
	done) &
	spid=$!
	PIDS+=("$spid")
	gens=()
	for v in off metrics nostats; do
		taskset -c "$GEN_CPU" "$BENCH" -s "127.0.0.1:${PORT[$v]}" --proto udp -c 128 \
			-f "$TMP/keys.txt" -d "$DUR" --warmup "$WARM" -P "${PID[$v]}" --json \
			>"$TMP/$v.$r.json" 2>"$TMP/$v.$r.err" &
		gens+=($!)
	done
	for g in "${gens[@]}"; do wait "$g"; done
	stop_pid "$spid"
	for v in off metrics nostats; do
		stop_pid "${PID[$v]}"
		log "$v round $r: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f replies/CPU-s, %.0f/s wall, lost %d" % (d["server"]["replies_per_cpu_s"], d["achieved_rate"], d["lost"]))' "$TMP/$v.$r.json" 2>/dev/null || echo "no report: $(head -c 200 "$TMP/$v.$r.err")")"
	done
done

python3 - "$TMP" "$RUNS" "$DUR" "$COUNT" "$APPEND" "$SRC/docs/benchmarks.md" <<'PY'
import glob, json, os, platform, statistics, subprocess, sys, time
tmp, runs, dur, count, append, out = sys.argv[1:7]
def vals(v):
    r = []
    for p in sorted(glob.glob(os.path.join(tmp, v + ".*.json"))):
        try:
            r.append(json.load(open(p))["server"]["replies_per_cpu_s"])
        except Exception:
            pass
    return r
res = {v: vals(v) for v in ("off", "metrics", "nostats")}
if not all(res.values()):
    print("obs_cost: a variant has no report: %s" % {k: len(v) for k, v in res.items()})
    sys.exit(1)
med = {v: statistics.median(x) for v, x in res.items()}
# per round ratios (the variants of one round ran minutes apart at most)
rounds = min(len(x) for x in res.values())
r_m = [res["metrics"][i] / res["off"][i] for i in range(rounds)]
r_s = [res["off"][i] / res["nostats"][i] for i in range(rounds)]
try:
    commit = subprocess.run(["git", "-C", os.path.dirname(out), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
except OSError:
    commit = "?"
lines = ["", "### Observability cost (bench/obs_cost.sh) — %s, commit %s" % (
    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit), "",
    "Machine: %s, %d CPUs; kernel %s. B4 cell (UDP, `-c 128` closed loop, response cache off, one "
    "worker on CPU 0, idnode-bench on CPU 1), %s identifiers, %s rounds x %s s; the three "
    "variants side by side in each round (servers sharing CPU 0, generators CPU 1). Figure: replies per server CPU-second (every thread of "
    "idnoded, the metrics listener's included)." % (platform.processor() or platform.machine(),
    os.cpu_count(), platform.release(), count, runs, dur), "",
    "| variant | replies / server CPU-s, median [min–max] |", "|---|---|"]
names = {"off": "metrics off, statistics on (defaults)",
         "metrics": "metrics on (histograms), scraped every 1 s",
         "nostats": "metrics off, statistics off"}
for v in ("off", "metrics", "nostats"):
    x = res[v]
    lines.append("| %s | %.1fk [%.1fk–%.1fk] |" % (names[v], med[v] / 1e3, min(x) / 1e3,
                                                    max(x) / 1e3))
lines += ["", "| ratio | median of the per-round ratios [min–max] | medians' ratio | target |",
          "|---|---|---|---|",
          "| metrics on / off | %.3f× [%.3f–%.3f] | %.3f× | ≥ 0.97× |" % (
              statistics.median(r_m), min(r_m), max(r_m), med["metrics"] / med["off"]),
          "| statistics on / off | %.3f× [%.3f–%.3f] | %.3f× | (measured; no target) |" % (
              statistics.median(r_s), min(r_s), max(r_s), med["off"] / med["nostats"]), ""]
text = "\n".join(lines)
print(text)
if append == "1":
    with open(out, "a") as f:
        f.write(text + "\n")
PY
