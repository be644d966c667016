#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/cache_ab.sh — the per-worker response cache, A/B: two idnoded builds, each with the
# cache off and on, all four running at once (--workers 1, pinned to CPU 0) with warm caches;
# idnode-bench (CPU 1) visits them in a shuffled order each round with a new --seed, and the
# ratio cache-on / cache-off of replies per server CPU-second is taken within each round.
# Figures in docs/resolver-cache.md §4.
#
#   bench/cache_ab.sh A_IDNODED B_IDNODED DB KEYS [uni|zipf] [ROUNDS] [SECONDS]
#     DB    an LMDB store homing 88.100.1 (idnode gen --prefix 88.100.1 | idnode import --db DB -)
#     KEYS  its keys (idnode gen ... --keys-only)
set -u
[ $# -ge 4 ] || { sed -n 3,11p "$0"; exit 2; }
A=$1 B=$2 DB=$3 KEYS=$4 PAT=${5:-uni} ROUNDS=${6:-15} DUR=${7:-4}
BENCH=${BENCH:-$(dirname "$0")/../build/idnode-bench}
SIZE=${CACHE_SIZE:-64m}
TMP=$(mktemp -d /tmp/idnode-cache-ab.XXXXXX)
declare -A BIN=([a]=$A [b]=$B) PORT PID
fp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
stop() { for k in "${!PID[@]}"; do kill "${PID[$k]}" 2>/dev/null; done; wait 2>/dev/null; }
trap stop EXIT
for b in a b; do
	for cs in 0 "$SIZE"; do
		k=$b.$cs
		PORT[$k]=$(fp)
		taskset -c 0 "${BIN[$b]}" --db "$DB" --listen "127.0.0.1:${PORT[$k]}" --http "127.0.0.1:$(fp)" \
			--home 88.100.1 --workers 1 --cache-size "$cs" >"$TMP/node.$k.log" 2>&1 &
		PID[$k]=$!
	done
done
for k in "${!PORT[@]}"; do
	for _ in $(seq 1 50); do
		"$BENCH" -s "127.0.0.1:${PORT[$k]}" -f "$KEYS" -n 1 -d 1 --timeout 300 >/dev/null 2>&1 && break
		sleep 0.2
	done
done
extra=()
[ "$PAT" = zipf ] && extra=(--zipf 1.0)
for k in "${!PORT[@]}"; do # warm every cache: the figure is the steady state
	taskset -c 1 "$BENCH" -s "127.0.0.1:${PORT[$k]}" -f "$KEYS" --proto udp -c 128 -d 8 --seed 7 "${extra[@]}" >/dev/null 2>&1
done
for run in $(seq 1 "$ROUNDS"); do
	for k in $(printf '%s\n' "${!PORT[@]}" | shuf); do
		taskset -c 1 "$BENCH" -s "127.0.0.1:${PORT[$k]}" -f "$KEYS" --proto udp -c 128 -d "$DUR" --warmup 1 \
			-P "${PID[$k]}" --json --seed $((run * 100 + RANDOM % 100)) "${extra[@]}" >"$TMP/$k.$run.json" 2>/dev/null
	done
done
stop
trap - EXIT
python3 - "$TMP" "$SIZE" "$PAT" <<'PY'
import collections, glob, json, os, statistics, sys
tmp, size, pat = sys.argv[1:4]
d = collections.defaultdict(dict)
for f in glob.glob(os.path.join(tmp, "*.json")):
    b, cs, run = os.path.basename(f)[:-5].split(".")
    try:
        d[(b, cs)][int(run)] = json.load(open(f))["server"]["replies_per_cpu_s"]
    except Exception:
        pass
for b in ("a", "b"):
    off, on = d[(b, "0")], d[(b, size)]
    r = sorted(on[x] / off[x] for x in set(off) & set(on) if off[x] and on[x])
    q = statistics.quantiles(r, n=4) if len(r) >= 4 else [float("nan")] * 3
    print("%s %s: rounds %d, off %.0f, on %.0f replies/CPU-s (medians), on/off %.3f (IQR %.3f-%.3f)" % (
        pat, b, len(r), statistics.median(off.values()), statistics.median(on.values()),
        statistics.median(r), q[0], q[2]))
for f in sorted(glob.glob(os.path.join(tmp, "node.*.log"))):
    for line in open(f):
        if "response cache:" in line:
            print(os.path.basename(f), line.split("response cache:")[1].strip())
PY
echo "reports and logs: $TMP"
