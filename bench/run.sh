#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/run.sh — the idnode benchmark suite: idnoded beside Knot DNS, a recvmmsg/sendmmsg UDP
# echo server and nginx on the same box, in the same run, with the same pinning. See
# bench/README.md.
#
#   bench/run.sh [--smoke] [--full] [--b6-only] [--runs N] [-d SECONDS] [--warmup S] [--count N]
#                [--build DIR] [--append | --no-append] [--out FILE] [--keep]
#
# --smoke : ~1 s per cell, 1000 identifiers, one run; exits non-zero when any cell fails to
#           produce a parsable report. Knot / nginx cells are skipped when the binaries are absent.
#           -d, --warmup and --count given with --smoke replace its defaults.
# --full  : also B4 with 10,000,000 identifiers.
# --b6-only : only the B6 cells (registration writes and the LMDB baseline), no peers.
# Every process this script starts is stopped by PID on exit. Loopback only.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${HDL_BUILD_DIR:-$SRC/build}
SMOKE=0 FULL=0 RUNS=3 DUR=10 WARM=2 COUNT=1000000 APPEND=auto KEEP=0 B6_ONLY=0
SET_DUR= SET_WARM= SET_COUNT=
OUT=$SRC/docs/benchmarks.md
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) SMOKE=1 ;;
	--full) FULL=1 ;;
	--runs) RUNS=$2; shift ;;
	-d) DUR=$2; SET_DUR=$2; shift ;;
	--warmup) WARM=$2; SET_WARM=$2; shift ;;
	--count) COUNT=$2; SET_COUNT=$2; shift ;;
	--build) BUILD=$2; shift ;;
	--append) APPEND=1 ;;
	--no-append) APPEND=0 ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	--b6-only) B6_ONLY=1 ;;
	-h|--help) sed -n '3,18p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
if [ "$SMOKE" = 1 ]; then
	# the smoke defaults; -d / --warmup / --count given on the command line win
	RUNS=1 DUR=${SET_DUR:-1} WARM=${SET_WARM:-0.2} COUNT=${SET_COUNT:-1000} FULL=0
	[ "$APPEND" = auto ] && APPEND=0
fi
[ "$APPEND" = auto ] && APPEND=1
if [ "$B6_ONLY" = 1 ]; then
	# the read database only serves the readiness probes
	COUNT=${SET_COUNT:-1000} FULL=0
fi

BENCH=$BUILD/idnode-bench
IDNODED=$BUILD/idnoded
IDNODE=$BUILD/idnode
ECHO=$BUILD/udp_echo
LMDBC=$BUILD/lmdb_commit
for b in "$BENCH" "$IDNODED" "$IDNODE" "$ECHO"; do
	if [ ! -x "$b" ]; then
		echo "run.sh: $b is missing (build first: cmake -S . -B build && cmake --build build)" >&2
		exit 3
	fi
done
KNOTD=$(command -v knotd || true)
NGINX=$(command -v nginx || true)

if [ "$(nproc)" -ge 2 ]; then
	SRV_CPU=${BENCH_SERVER_CPU:-0} GEN_CPU=${BENCH_GEN_CPU:-1}
else
	SRV_CPU=0 GEN_CPU=0
fi

TMP=$(mktemp -d /tmp/idnode-bench.XXXXXX)
RES=$TMP/results
mkdir -p "$RES"
PIDS=()
FAILED=0
EXPECTED=()
NOTES=()

log() { echo "[run.sh $(date -u +%H:%M:%S)] $*" >&2; }

stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		stop_pid "$p"
	done
	if [ "$KEEP" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD... : run CMD pinned to the server CPU in the background; sets PID_NAME
start() {
	local name=$1
	shift
	taskset -c "$SRV_CPU" "$@" >"$TMP/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	printf -v "PID_$name" '%s' "$pid"
	log "started $name (pid $pid): $*"
}

remove_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" != "$1" ] && keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# free_ports N: N distinct ports free for both TCP and UDP on 127.0.0.1, one python3 for all
free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
ports = []
for _ in range(200 * int(sys.argv[1])):
    if len(ports) == int(sys.argv[1]):
        break
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
        if port not in ports:
            ports.append(port)
    except OSError:
        pass
    u.close()
    t.close()
print(" ".join(map(str, ports)))
PY
}

# wait_ready PID SECONDS BENCH-ARGS... : until one request gets an answer
wait_ready() {
	local pid=$1 secs=$2 i
	shift 2
	for i in $(seq 1 $((secs * 5))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if "$BENCH" "$@" -n 1 -d 1 --timeout 300 >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# cell BENCH SERVER RUN PID BENCH-ARGS... : one measured run, JSON into $RES
cell() {
	local bench=$1 server=$2 run=$3 pid=$4
	shift 4
	[ "$B6_ONLY" = 1 ] && [ "${bench#b6}" = "$bench" ] && return 0
	local out=$RES/$bench.$server.$run.json
	taskset -c "$GEN_CPU" "$BENCH" "$@" -d "$DUR" --warmup "$WARM" -P "$pid" --json >"$out" 2>"$TMP/$bench.$server.$run.err"
	local rc=$?
	local line # one python3 (slow to start): parse the report and summarize it
	if [ "$SMOKE" = 1 ] && [ "$rc" = 0 ] && [ -s "$out" ]; then
		log "$bench/$server run $run: report written (summarize.py checks it)"
		return 0
	fi
	if ! line=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d.get("server") or {}; print("completed %d lost %d  %.0f/s  %.0f replies/CPU-s  p99 %.0f us" % (d["completed"], d["lost"], d["achieved_rate"], s.get("replies_per_cpu_s",0), d["latency_us"]["p99"]))' "$out" 2>/dev/null); then
		log "FAIL $bench/$server run $run: no parsable report (rc $rc): $(head -c 300 "$TMP/$bench.$server.$run.err")"
		rm -f "$out"
		FAILED=1
		return 1
	fi
	log "$bench/$server run $run: $line"
	if [ "$rc" != 0 ]; then
		log "FAIL $bench/$server run $run: idnode-bench exit $rc (no replies)"
		FAILED=1
	fi
	return 0
}

expect() {
	[ "$B6_ONLY" = 1 ] && [ "${1#b6}" = "$1" ] && return 0
	EXPECTED+=("$1")
}

# half_median BENCH.SERVER : half the median wall rate of that cell's runs (0 when none)
half_median() {
	python3 - "$RES" "$1" <<'PY'
import glob, json, statistics, sys
v = []
for p in glob.glob(sys.argv[1] + "/" + sys.argv[2] + ".*.json"):
    try:
        v.append(json.load(open(p))["achieved_rate"])
    except Exception:
        pass
print("%.0f" % (statistics.median(v) / 2) if v else "0")
PY
}

json_list() {
	python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]), end="")' "$@"
}

now_s() { date +%s.%N; }

# ---- data -------------------------------------------------------------------------------
PREFIX=88.100.1
DB=$TMP/db
log "generating $COUNT identifiers"
"$IDNODE" gen --prefix $PREFIX --count "$COUNT" >"$TMP/data.jsonl" || { log "idnode gen failed"; exit 3; }
"$IDNODE" gen --prefix $PREFIX --count "$COUNT" --keys-only >"$TMP/keys.txt" 2>/dev/null \
	|| cp "$TMP/data.jsonl" "$TMP/keys.txt"
mkdir -p "$DB"
t0=$(now_s)
"$IDNODE" import --db "$DB" "$TMP/data.jsonl" >"$TMP/import.log" 2>&1 || { log "idnode import failed: $(tail -3 "$TMP/import.log")"; exit 3; }
t1=$(now_s)
IMPORT_RATE=$(python3 -c "print('%.1f' % ($COUNT / max(1e-9, $t1 - $t0)))")
log "import: $COUNT records in $(python3 -c "print('%.2f' % ($t1 - $t0))") s = $IMPORT_RATE records/s"
# idnoded refuses a database another idnoded holds: the second instance gets a copy
cp -a --reflink=auto "$DB" "$DB-cache"

# ---- servers ----------------------------------------------------------------------------
read -r P_NODE H_NODE P_NODEC H_NODEC P_ECHO P_KNOT P_NGX P_W H_W P_WP H_WP < <(free_ports 11)
# B4 is defined with the response cache off; a second instance with the cache on (64 MiB) serves
# the B4z cell "idnoded-cache" (Zipf keys + response cache)
start idnoded "$IDNODED" --db "$DB" --listen "127.0.0.1:$P_NODE" --http "127.0.0.1:$H_NODE" --home $PREFIX --workers 1 --cache-size 0
KEYS=(-f "$TMP/keys.txt")
if ! wait_ready "$PID_idnoded" 60 -s "127.0.0.1:$P_NODE" "${KEYS[@]}"; then
	log "idnoded did not answer: $(tail -5 "$TMP/idnoded.log")"
	exit 3
fi
# reply size, for a Knot zone with TXT records of similar size
PROBE=$("$BENCH" -s "127.0.0.1:$P_NODE" "${KEYS[@]}" -n 500 -d 2 --json 2>/dev/null)
REPLY_B=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(int(d["reply_bytes"]/max(1,d["completed"])))' "$PROBE" 2>/dev/null || echo 300)
log "idnoded answers on udp/tcp $P_NODE, http $H_NODE; average UDP reply $REPLY_B bytes"
start idnodedc "$IDNODED" --db "$DB-cache" --listen "127.0.0.1:$P_NODEC" --http "127.0.0.1:$H_NODEC" --home $PREFIX --workers 1 --cache-size 64m
wait_ready "$PID_idnodedc" 60 -s "127.0.0.1:$P_NODEC" "${KEYS[@]}" || { log "idnoded (cache on) did not answer: $(tail -5 "$TMP/idnodedc.log")"; exit 3; }

start echo "$ECHO" "127.0.0.1:$P_ECHO"
wait_ready "$PID_echo" 10 -s "127.0.0.1:$P_ECHO" --echo-ok --pattern "$PREFIX/%s" --range 1-10 || { log "udp_echo did not start"; exit 3; }

HAVE_KNOT=0
if [ "$B6_ONLY" = 1 ]; then
	:
elif [ -n "$KNOTD" ]; then
	K=$TMP/knot
	mkdir -p "$K"
	# DNS reply = 12 header + question (~10 name + 4) + answer (2 + 10 + rdata) + OPT 11:
	# size the TXT rdata so the reply matches REPLY_B
	RDLEN=$((REPLY_B - 49))
	[ "$RDLEN" -lt 20 ] && RDLEN=20
	python3 - "$K/bench.zone" "$COUNT" "$RDLEN" <<'PY'
import sys
path, n, rdlen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    f.write("$ORIGIN bench.\n$TTL 3600\n@ SOA ns.bench. admin.bench. 1 3600 900 604800 300\n@ NS ns\nns A 127.0.0.1\n")
    for i in range(n):
        # character-strings of up to 255 bytes, each costing one length byte
        body = ("k%d-" % i) * 60
        left = rdlen
        parts = []
        while left > 1:
            take = min(255, left - 1)
            parts.append((body * 5)[:take])
            left -= take + 1
        f.write("k%d TXT %s\n" % (i, " ".join('"%s"' % p for p in parts)))
PY
	cat >"$K/knot.conf" <<KC
server:
    rundir: "$K"
    listen: 127.0.0.1@$P_KNOT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$K"
control:
    listen: "$K/knot.sock"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$K"
    semantic-checks: off
zone:
  - domain: bench
    file: "$K/bench.zone"
KC
	start knot "$KNOTD" -c "$K/knot.conf"
	if wait_ready "$PID_knot" 600 -s "127.0.0.1:$P_KNOT" --proto dns --pattern 'k%s.bench' --range 0-0; then
		HAVE_KNOT=1
	else
		log "knotd did not answer: $(tail -5 "$TMP/knot.log")"
		FAILED=1
	fi
else
	NOTES+=("knotd not installed: Knot DNS cells skipped")
fi

HAVE_NGINX=0
if [ "$B6_ONLY" = 1 ]; then
	:
elif [ -n "$NGINX" ]; then
	N=$TMP/nginx
	mkdir -p "$N/www" "$N/tmp" "$N/logs"
	FIRST_KEY=$(grep -v '^#' "$TMP/keys.txt" | head -1 | python3 -c 'import sys,json; l=sys.stdin.read().strip(); print(json.loads(l)["handle"] if l.startswith("{") else l)')
	curl -s -m 5 "http://127.0.0.1:$H_NODE/api/handles/$FIRST_KEY" >"$N/www/h.json" 2>/dev/null
	if ! python3 -m json.tool "$N/www/h.json" >/dev/null 2>&1; then
		NOTES+=("nginx served a synthetic JSON body (idnoded's REST answer for $FIRST_KEY did not parse)")
		printf '{"responseCode":1,"handle":"%s","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://id.example.com/p/x"},"ttl":86400,"timestamp":"2024-05-01T00:00:00Z"}]}' "$FIRST_KEY" >"$N/www/h.json"
	fi
	cat >"$N/nginx.conf" <<NC
worker_processes 1;
master_process off;
daemon off;
pid $N/nginx.pid;
error_log $N/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    open_file_cache max=64 inactive=300s;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    server {
        listen 127.0.0.1:$P_NGX deferred;
        location /api/handles/ {
            root $N/www;
            default_type application/json;
            try_files /h.json =404;
        }
    }
}
NC
	start nginx "$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/logs/error.log"
	if wait_ready "$PID_nginx" 20 -s "127.0.0.1:$P_NGX" --proto rest "${KEYS[@]}"; then
		HAVE_NGINX=1
	else
		log "nginx did not answer: $(tail -5 "$TMP/nginx.log")"
		FAILED=1
	fi
else
	NOTES+=("nginx not installed: nginx cells skipped")
fi

# B6: durable creates. Two more nodes on small databases of their own (seeds/demo.jsonl: the
# identity 300:0.NA/88.100.1 with HS_SECKEY "secret" may create under 88.100.1), in the same
# directory as the read database (the same disk for the fsyncs), one worker like the others,
# the writer thread on the same CPU: write_sync full (answered after the fsync of the group
# commit) and write_sync periodic (fsync every second). idnode-bench logs in once per connection
# (IDIS OC 2001) and keeps B6_CONNS x B6_DEPTH creates in flight.
B6_CONNS=${B6_CONNS:-16} B6_DEPTH=${B6_DEPTH:-8}
B6_BATCH_MAX=512 B6_BATCH_WAIT_US=0
HAVE_B6=1
for mode in full periodic; do
	mkdir -p "$TMP/wdb-$mode"
	"$IDNODE" import --db "$TMP/wdb-$mode" --home $PREFIX "$SRC/seeds/demo.jsonl" >"$TMP/wimport-$mode.log" 2>&1 \
		|| { log "import for B6 failed: $(tail -3 "$TMP/wimport-$mode.log")"; HAVE_B6=0; }
	printf 'write_sync = %s\nwrite_batch_max = %s\nwrite_batch_wait_us = %s\n' "$mode" \
		"$B6_BATCH_MAX" "$B6_BATCH_WAIT_US" >"$TMP/w-$mode.conf"
done
B6=(--proto tcp --op create --auth 300:0.NA/88.100.1 --seckey-file "$SRC/seeds/demo-admin.secret"
	--conns "$B6_CONNS" --depth "$B6_DEPTH" --timeout 10000)
# smoke cells are too short for 16 logins with hdllib's PBKDF2 (on sanitized builds): a cheap MAC
[ "$SMOKE" = 1 ] && B6+=(--seckey-alg hmac-sha256)
if [ $HAVE_B6 = 1 ]; then
	start idnodedw "$IDNODED" -c "$TMP/w-full.conf" --db "$TMP/wdb-full" --listen "127.0.0.1:$P_W" --http "127.0.0.1:$H_W" --home $PREFIX --workers 1
	start idnodedwp "$IDNODED" -c "$TMP/w-periodic.conf" --db "$TMP/wdb-periodic" --listen "127.0.0.1:$P_WP" --http "127.0.0.1:$H_WP" --home $PREFIX --workers 1
	for w in "$PID_idnodedw:$P_W" "$PID_idnodedwp:$P_WP"; do
		wait_ready "${w%%:*}" 60 -s "127.0.0.1:${w#*:}" --proto tcp --pattern "$PREFIX/PUMP-2024-%06d" --range 123-123 \
			|| { log "a B6 node did not answer"; HAVE_B6=0; FAILED=1; }
	done
fi
[ -x "$LMDBC" ] || NOTES+=("bench/lmdb_commit not built: the B6 baseline row is missing")
LMDB_COUNT=2000
[ "$SMOKE" = 1 ] && LMDB_COUNT=100

# lmdb_cell RUN: LMDB's own one-put-per-fsync'ed-commit rate on the same disk, pinned like a server
lmdb_cell() {
	local out=$RES/b6l.lmdb_commit.$1.json
	if ! taskset -c "$SRV_CPU" "$LMDBC" --dir "$TMP" --count "$LMDB_COUNT" --json >"$out" 2>"$TMP/lmdb.$1.err"; then
		log "FAIL b6l/lmdb_commit run $1: $(head -c 300 "$TMP/lmdb.$1.err")"
		rm -f "$out"
		FAILED=1
		return 1
	fi
	log "b6l/lmdb_commit run $1: $(cat "$out")"
}
# ---- the resolution path: B1, B5, B5s (docs/delegation.md) ----------------------------------
# An upstream idnoded homing the prefix (a copy of the B4 data) and three delegating nodes that
# home nothing and forward 88.100.1 to it: "resolver" (cache on, primed: B1 cache hits),
# "resolver-miss" (cache off: every query goes upstream, B5) and "resolver-stale" (TTLs cut to
# 1 s: B5s serve-stale once the upstream is black-holed). The upstream is asked over the TLS
# stream when this build has one (tls_listen), else over TCP (noted in the report).
read -r P_UP H_UP T_UP P_RES H_RES P_RESM H_RESM P_RESS H_RESS < <(free_ports 9)
R=$TMP/resolver
mkdir -p "$R"
UP_TRANSPORT=tcp
UP_PORT=$P_UP
printf 'db = %s\ntls_listen = 127.0.0.1:1\n' "$R" >"$R/probe.conf"
if ! "$IDNODED" -t -c "$R/probe.conf" 2>&1 | grep -q "unknown key" &&
	bash "$SRC/certs/make-dev-certs.sh" "$R/certs" >/dev/null 2>&1; then
	UP_TRANSPORT=tls
	UP_PORT=$T_UP
else
	NOTES+=("B1/B5/B5s: this build has no TLS stream (tls_listen): the delegating nodes ask the upstream over plain TCP")
fi
cp -a --reflink=auto "$DB" "$DB-up"
{
	echo "db = $DB-up"
	echo "listen = 127.0.0.1:$P_UP"
	echo "http = 127.0.0.1:$H_UP"
	echo "home = $PREFIX"
	echo "workers = 1"
	echo "cache_size = 0"
	if [ "$UP_TRANSPORT" = tls ]; then
		echo "tls_listen = 127.0.0.1:$T_UP"
		echo "tls_cert = $R/certs/server.pem"
		echo "tls_key = $R/certs/server.key"
	fi
} >"$R/up.conf"
start idnodedu "$IDNODED" -c "$R/up.conf"
wait_ready "$PID_idnodedu" 60 -s "127.0.0.1:$P_UP" "${KEYS[@]}" || { log "upstream idnoded did not answer: $(tail -5 "$TMP/idnodedu.log")"; exit 3; }
UPLINE="up 127.0.0.1:$UP_PORT transport=$UP_TRANSPORT pipeline=32"
[ "$UP_TRANSPORT" = tls ] && UPLINE="$UPLINE ca=$R/certs/ca.pem"
B5S_BUDGET_MS=200
B5S_HOLD_MS=2000
# resolver_conf NAME UDP HTTP [extra lines...]
resolver_conf() {
	local name=$1 udp=$2 http=$3
	shift 3
	mkdir -p "$R/$name-db"
	{
		echo "db = $R/$name-db"
		echo "listen = 127.0.0.1:$udp"
		echo "http = 127.0.0.1:$http"
		echo "workers = 1"
		echo "control_socket = $R/$name.sock"
		echo "upstream = $UPLINE"
		echo "forward = $PREFIX up"
		echo "pending_per_source = 100000"
		printf '%s\n' "$@"
	} >"$R/$name.conf"
}
resolver_conf res "$P_RES" "$H_RES" "resolver_cache_size = 256m"
resolver_conf resm "$P_RESM" "$H_RESM" "resolver_cache_size = 0"
resolver_conf ress "$P_RESS" "$H_RESS" "resolver_max_ttl = 1" "resolver_prefetch_pct = 0" \
	"resolver_stale_budget_ms = $B5S_BUDGET_MS" "resolver_stale_refresh_ms = $B5S_HOLD_MS" \
	"upstream_timeout_ms = 1000" "upstream_try_timeout_ms = 1000"
start idnodedr "$IDNODED" -c "$R/res.conf"
start idnodedm "$IDNODED" -c "$R/resm.conf"
start idnodeds "$IDNODED" -c "$R/ress.conf"
# B1 keys: as many as the resolver cache holds comfortably; B5s keys: a smaller set
B1_COUNT=$(( COUNT < 20000 ? COUNT : 20000 ))
B5S_COUNT=$(( COUNT < 2000 ? COUNT : 2000 ))
head -n "$B1_COUNT" "$TMP/keys.txt" >"$R/b1keys.txt"
head -n "$B5S_COUNT" "$TMP/keys.txt" >"$R/b5skeys.txt"
HAVE_RES=1
for n in idnodedr idnodedm idnodeds; do
	pv=PID_$n
	port=$P_RES; [ $n = idnodedm ] && port=$P_RESM; [ $n = idnodeds ] && port=$P_RESS
	if ! wait_ready "${!pv}" 60 -s "127.0.0.1:$port" "${KEYS[@]}"; then
		log "FAIL: delegating idnoded $n did not answer: $(tail -5 "$TMP/$n.log")"
		HAVE_RES=0
		FAILED=1
	fi
done
# status_field SOCKET COMMAND FIELD : one number from the control socket (0 when none)
status_field() {
	"$IDNODE" "$2" $( [ "$2" = cache ] && echo stats ) --socket "$1" 2>/dev/null | awk -v f="$3" '$1 == f {print $2}' | head -1 | grep . || echo 0
}
# prime SOCKET UDP-PORT KEYFILE ENTRIES [BENCH-ARGS...] : resolve every key once through the
# delegating node, until its cache holds ENTRIES entries
prime() {
	local sock=$1 port=$2 keys=$3 want=$4 i have
	shift 4
	for i in 1 2 3 4 5 6; do
		taskset -c "$GEN_CPU" "$BENCH" -s "127.0.0.1:$port" -f "$keys" -d 3 -c 64 "$@" >/dev/null 2>&1
		have=$(status_field "$sock" cache entries)
		[ "${have:-0}" -ge "$want" ] && return 0
	done
	log "priming $sock: $have of $want entries cached"
	return 1
}
if [ "$HAVE_RES" = 1 ]; then
	prime "$R/res.sock" "$P_RES" "$R/b1keys.txt" "$B1_COUNT" || NOTES+=("B1: the resolver cache did not hold every key after priming (some B1 requests were misses)")
	# the same keys asked for their URL only: one-datagram answers, like the echo's
	prime "$R/res.sock" "$P_RES" "$R/b1keys.txt" $((2 * B1_COUNT)) --type URL || NOTES+=("B1 (URL only): not every key was cached after priming")
	prime "$R/ress.sock" "$P_RESS" "$R/b5skeys.txt" "$B5S_COUNT" || NOTES+=("B5s: not every key was cached before the upstream was black-holed")
	NOTES+=("B1: $B1_COUNT keys resolved once through the delegating node before the cells (all cache hits); B5: $COUNT keys, resolver cache off, forward rule to the upstream over $UP_TRANSPORT, both nodes pinned to CPU $SRV_CPU")
fi

# ---- cells ------------------------------------------------------------------------------
NODE=(-s "127.0.0.1:$P_NODE" "${KEYS[@]}")
KNOTK=(--pattern 'k%s.bench' --range "0-$((COUNT - 1))")
UDPLOAD=(-c 128)
# B2c: connect, one request, answer, close (idnode-bench --new-conn: HTTP says Connection: close)
B2C=(--new-conn -c 16)
for b in b4u.idnoded b4z.idnoded b4z.idnoded-cache b4u.echo b2.idnoded b3.idnoded http.idnoded b2c.idnoded b2ch.idnoded; do expect "$b"; done
[ "$HAVE_RES" = 1 ] && for b in b1.idnoded-resolver b1t.idnoded-resolver b5.idnoded-resolver b5.idnoded-upstream; do expect "$b"; done
[ $HAVE_KNOT = 1 ] && for b in b4u.knot b4z.knot b2.knot; do expect "$b"; done
[ $HAVE_NGINX = 1 ] && for b in b3.nginx b2c.nginx; do expect "$b"; done
[ $HAVE_B6 = 1 ] && for b in b6.idnoded b6p.idnoded; do expect "$b"; done
[ $HAVE_B6 = 1 ] && [ -x "$LMDBC" ] && expect b6l.lmdb_commit

for run in $(seq 1 "$RUNS"); do
	log "---- run $run of $RUNS"
	cell b4u idnoded "$run" "$PID_idnoded" "${NODE[@]}" "${UDPLOAD[@]}"
	[ $HAVE_KNOT = 1 ] && cell b4u knot "$run" "$PID_knot" -s "127.0.0.1:$P_KNOT" --proto dns "${KNOTK[@]}" "${UDPLOAD[@]}"
	cell b4u echo "$run" "$PID_echo" -s "127.0.0.1:$P_ECHO" --echo-ok "${KEYS[@]}" "${UDPLOAD[@]}"
	cell b4z idnoded "$run" "$PID_idnoded" "${NODE[@]}" --zipf 1.0 "${UDPLOAD[@]}"
	cell b4z idnoded-cache "$run" "$PID_idnodedc" -s "127.0.0.1:$P_NODEC" "${KEYS[@]}" --zipf 1.0 "${UDPLOAD[@]}"
	[ $HAVE_KNOT = 1 ] && cell b4z knot "$run" "$PID_knot" -s "127.0.0.1:$P_KNOT" --proto dns "${KNOTK[@]}" --zipf 1.0 "${UDPLOAD[@]}"
	cell b2 idnoded "$run" "$PID_idnoded" "${NODE[@]}" --proto tcp --conns 16 --depth 16
	[ $HAVE_KNOT = 1 ] && cell b2 knot "$run" "$PID_knot" -s "127.0.0.1:$P_KNOT" --proto dns-tcp "${KNOTK[@]}" --conns 16 --depth 16
	cell b3 idnoded "$run" "$PID_idnoded" -s "127.0.0.1:$H_NODE" "${KEYS[@]}" --proto rest --conns 64 --depth 1
	[ $HAVE_NGINX = 1 ] && cell b3 nginx "$run" "$PID_nginx" -s "127.0.0.1:$P_NGX" "${KEYS[@]}" --proto rest --conns 64 --depth 1
	cell http idnoded "$run" "$PID_idnoded" -s "127.0.0.1:$H_NODE" "${KEYS[@]}" --proto http --conns 64 --depth 1
	cell b2c idnoded "$run" "$PID_idnoded" "${NODE[@]}" --proto tcp "${B2C[@]}"
	[ $HAVE_NGINX = 1 ] && cell b2c nginx "$run" "$PID_nginx" -s "127.0.0.1:$P_NGX" "${KEYS[@]}" --proto rest "${B2C[@]}"
	cell b2ch idnoded "$run" "$PID_idnoded" -s "127.0.0.1:$H_NODE" "${KEYS[@]}" --proto rest "${B2C[@]}"
	if [ $HAVE_B6 = 1 ]; then
		# every create takes a new key; the write nodes' databases grow over the runs
		[ -x "$LMDBC" ] && lmdb_cell "$run"
		cell b6 idnoded "$run" "$PID_idnodedw" -s "127.0.0.1:$P_W" "${B6[@]}" --pattern "$PREFIX/b6-$run-%s" --range 1-100000000
		cell b6p idnoded "$run" "$PID_idnodedwp" -s "127.0.0.1:$P_WP" "${B6[@]}" --pattern "$PREFIX/b6p-$run-%s" --range 1-100000000
	fi
	if [ "$HAVE_RES" = 1 ]; then
		cell b1 idnoded-resolver "$run" "$PID_idnodedr" -s "127.0.0.1:$P_RES" -f "$R/b1keys.txt" "${UDPLOAD[@]}"
		cell b1t idnoded-resolver "$run" "$PID_idnodedr" -s "127.0.0.1:$P_RES" -f "$R/b1keys.txt" --type URL "${UDPLOAD[@]}"
		cell b5 idnoded-resolver "$run" "$PID_idnodedm" -s "127.0.0.1:$P_RESM" "${KEYS[@]}" "${UDPLOAD[@]}"
		cell b5 idnoded-upstream "$run" "$PID_idnodedu" -s "127.0.0.1:$P_UP" "${KEYS[@]}" "${UDPLOAD[@]}"
	fi
done
if [ $HAVE_B6 = 1 ]; then
	# the writers' batch figures are in their shutdown lines
	for w in idnodedw idnodedwp; do
		pid_var=PID_$w
		stop_pid "${!pid_var}"
		remove_pid "${!pid_var}"
	done
	NOTES+=("B6 nodes: one worker, writer thread on the same CPU; write_batch_max $B6_BATCH_MAX, write_batch_wait_us $B6_BATCH_WAIT_US, write_queue_max 10000 (default); write_sync full (b6) and periodic with write_sync_interval_ms 1000 (b6p); idnode-bench --op create over TCP, $B6_CONNS connections x $B6_DEPTH pipelined, IDIS login once per connection, one URL value per handle; LMDB baseline: bench/lmdb_commit, $LMDB_COUNT commits of 160 bytes per run on the same disk")
	NOTES+=("B6 writer, write_sync full: $(grep -o 'writer (shutdown): .*' "$TMP/idnodedw.log" | head -1)")
	NOTES+=("B6 writer, write_sync periodic: $(grep -o 'writer (shutdown): .*' "$TMP/idnodedwp.log" | head -1)")
fi

# latency at 50 % of the measured maximum (median closed-loop wall rate of B4 uniform), open loop
LAT_RATE=$(half_median b4u.idnoded)
if [ "$B6_ONLY" = 1 ]; then
	:
elif [ "${LAT_RATE:-0}" -gt 0 ]; then
	expect lat.idnoded
	log "latency at 50 % load: $LAT_RATE/s open loop"
	cell lat idnoded 1 "$PID_idnoded" "${NODE[@]}" --rate "$LAT_RATE" -c 4096
	[ $HAVE_KNOT = 1 ] && cell lat knot 1 "$PID_knot" -s "127.0.0.1:$P_KNOT" --proto dns "${KNOTK[@]}" --rate "$LAT_RATE" -c 4000
else
	log "FAIL: no B4 figure to size the latency run"
	FAILED=1
fi

# B2c latency: connect-per-request TCP and plain UDP at the same offered rate (half the median
# B2c wall rate), open loop
LAT2C_RATE=$(half_median b2c.idnoded)
if [ "$B6_ONLY" = 1 ]; then
	:
elif [ "${LAT2C_RATE:-0}" -gt 0 ]; then
	expect lat2c.idnoded
	expect lat2cu.idnoded
	log "B2c latency: $LAT2C_RATE/s open loop, connect per request and UDP"
	cell lat2c idnoded 1 "$PID_idnoded" "${NODE[@]}" --proto tcp --new-conn --rate "$LAT2C_RATE" -c 1024
	cell lat2cu idnoded 1 "$PID_idnoded" "${NODE[@]}" --rate "$LAT2C_RATE" -c 1024
else
	log "FAIL: no B2c figure to size its latency run"
	FAILED=1
fi

# B5 added latency: the delegating node and the upstream itself at the same offered rate (half
# the median B5 wall rate), open loop, same keys
LAT5_RATE=$(half_median b5.idnoded-resolver)
if [ "$HAVE_RES" = 1 ] && [ "${LAT5_RATE:-0}" -gt 0 ]; then
	expect lat5.idnoded-resolver
	expect lat5.idnoded-upstream
	log "B5 latency: $LAT5_RATE/s open loop, through the delegating node and at the upstream"
	cell lat5 idnoded-resolver 1 "$PID_idnodedm" -s "127.0.0.1:$P_RESM" "${KEYS[@]}" --rate "$LAT5_RATE" -c 1024
	cell lat5 idnoded-upstream 1 "$PID_idnodedu" -s "127.0.0.1:$P_UP" "${KEYS[@]}" --rate "$LAT5_RATE" -c 1024
elif [ "$HAVE_RES" = 1 ]; then
	log "FAIL: no B5 figure to size its latency run"
	FAILED=1
fi

# B5s: the upstream black-holed (SIGSTOP: connections stay open, nothing answers), the cached
# keys past their 1 s TTL; every request must be answered from the stale entries within the
# budget, with at most one refresh per key per hold interval (upstream_queries of the node)
B5S_REFRESH=None
if [ "$HAVE_RES" = 1 ]; then
	expect b5s.idnoded-resolver
	sleep 1.5
	kill -STOP "$PID_idnodedu"
	q0=$(status_field "$R/ress.sock" status upstream_queries)
	t0=$(now_s)
	cell b5s idnoded-resolver 1 "$PID_idnodeds" -s "127.0.0.1:$P_RESS" -f "$R/b5skeys.txt" -c 64 --timeout $((B5S_BUDGET_MS + 300))
	t1=$(now_s)
	q1=$(status_field "$R/ress.sock" status upstream_queries)
	kill -CONT "$PID_idnodedu"
	B5S_REFRESH=$(python3 -c "
import math
span = max(1e-9, $t1 - $t0)
intervals = math.ceil(span / ($B5S_HOLD_MS / 1000.0))
print('%.3f' % (($q1 - $q0) / float($B5S_COUNT * intervals)))")
	log "B5s: $((q1 - q0)) upstream queries for $B5S_COUNT keys over $(python3 -c "print('%.1f' % ($t1 - $t0))") s: $B5S_REFRESH per key per ${B5S_HOLD_MS} ms interval"
	NOTES+=("B5s: $B5S_COUNT keys, TTL cut to 1 s, upstream SIGSTOPped; stale budget $B5S_BUDGET_MS ms, hold $B5S_HOLD_MS ms; a request counts as answered within $((B5S_BUDGET_MS + 300)) ms (the budget + 300 ms of scheduling on a shared box); $((q1 - q0)) upstream queries were tried during the cell")
fi

IMPORT_RATE_10M=None
if [ "$FULL" = 1 ]; then
	log "---- 10M identifiers"
	stop_pid "$PID_idnoded"
	remove_pid "$PID_idnoded"
	stop_pid "$PID_idnodedc"
	remove_pid "$PID_idnodedc"
	DB10=$TMP/db10
	mkdir -p "$DB10"
	"$IDNODE" gen --prefix $PREFIX --count 10000000 --keys-only >"$TMP/keys10.txt"
	# no 6 GB intermediate file: the import rate here is the gen | import pipeline's
	t0=$(now_s)
	"$IDNODE" gen --prefix $PREFIX --count 10000000 | "$IDNODE" import --db "$DB10" - >"$TMP/import10.log" 2>&1 \
		|| { log "import of 10M failed: $(tail -3 "$TMP/import10.log")"; FAILED=1; }
	t1=$(now_s)
	IMPORT_RATE_10M=$(python3 -c "print('%.1f' % (10000000 / max(1e-9, $t1 - $t0)))")
	log "import 10M (gen | import): $IMPORT_RATE_10M records/s"
	NOTES+=("10M: \`idnode gen | idnode import --db D -\` pipeline, wall time; LMDB $(( $(du -sk "$DB10" | cut -f1) / 1024 )) MB")
	start idnoded10 "$IDNODED" --db "$DB10" --listen "127.0.0.1:$P_NODE" --http "127.0.0.1:$H_NODE" --home $PREFIX --workers 1
	if wait_ready "$PID_idnoded10" 120 -s "127.0.0.1:$P_NODE" -f "$TMP/keys10.txt"; then
		expect b4u10m.idnoded
		expect b4z10m.idnoded
		for run in $(seq 1 "$RUNS"); do
			cell b4u10m idnoded "$run" "$PID_idnoded10" -s "127.0.0.1:$P_NODE" -f "$TMP/keys10.txt" "${UDPLOAD[@]}"
			cell b4z10m idnoded "$run" "$PID_idnoded10" -s "127.0.0.1:$P_NODE" -f "$TMP/keys10.txt" --zipf 1.0 "${UDPLOAD[@]}"
		done
	else
		log "FAIL: idnoded with 10M identifiers did not answer"
		FAILED=1
	fi
fi

# ---- report -----------------------------------------------------------------------------
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	COMMIT="$COMMIT+dirty"
fi
MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
HYPER=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1)
MEM=$(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')
MACHINE="$MODEL, $(nproc) CPUs${HYPER:+ ($HYPER guest)}, $MEM"
DBSIZE=$(du -sk "$DB" 2>/dev/null | cut -f1)
NOTES+=("LMDB data for $COUNT identifiers: $((DBSIZE / 1024)) MB on disk; average UDP reply $REPLY_B bytes (Knot TXT records sized to match)")
NOTES+=("import: \`idnode import\` of a pre-generated JSON Lines file, wall time")
NOTES+=("load average at the end of the run: $(cut -d' ' -f1-3 /proc/loadavg) (anything above ~2 on a 2-CPU box means other work shared the CPUs and wall figures are depressed)")
python3 - "$RES/meta.json" <<PY
import json, sys
meta = {
    "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
    "commit": "$COMMIT",
    "machine": """$MACHINE""",
    "kernel": "$(uname -r)",
    "server_cpu": "$SRV_CPU",
    "gen_cpu": "$GEN_CPU",
    "count": $COUNT,
    "runs": $RUNS,
    "duration": $DUR,
    "warmup": $WARM,
    "smoke": bool($SMOKE),
    "b6_only": bool($B6_ONLY),
    "import_rate": $IMPORT_RATE,
    "import_rate_10m": $IMPORT_RATE_10M,
    "lat_rate": ${LAT_RATE:-0},
    "lat2c_rate": ${LAT2C_RATE:-0},
    "lat5_rate": ${LAT5_RATE:-0},
    "b5s_budget_ms": ${B5S_BUDGET_MS:-0},
    "b5s_refresh": $B5S_REFRESH,
    "expected": $(json_list "${EXPECTED[@]}"),
    "notes": $(json_list "${NOTES[@]}"),
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
TITLE="Suite run"
[ "$SMOKE" = 1 ] && TITLE="Smoke run"
[ "$FULL" = 1 ] && TITLE="Full suite run (1M + 10M)"
[ "$B6_ONLY" = 1 ] && TITLE="B6 run (registration writes)"
[ "$B6_ONLY" = 1 ] && [ "$SMOKE" = 1 ] && TITLE="B6 smoke run"
if [ "$APPEND" = 1 ]; then
	python3 "$SRC/bench/summarize.py" "$RES" --title "$TITLE" --append "$OUT" || FAILED=1
	log "appended to $OUT"
else
	python3 "$SRC/bench/summarize.py" "$RES" --title "$TITLE" || FAILED=1
fi
if [ -n "${BENCH_RESULTS_COPY:-}" ]; then
	mkdir -p "$BENCH_RESULTS_COPY" && cp "$RES"/*.json "$BENCH_RESULTS_COPY"/
fi
[ "$FAILED" = 0 ] || log "some cells failed"
exit "$FAILED"
