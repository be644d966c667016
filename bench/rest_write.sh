#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# REST writes over HTTPS beside the binary path's B6, one node, the same run: durable creates/s
# of `idnode-bench --proto https --op create` (PUT /api/handles/KEY?overwrite=false, Basic
# credentials, keep-alive connections, one request in flight each) against
# `--proto tcp --op create` (the Handle protocol, IDIS login once per connection, the same
# number of requests in flight), and the same REST over plain HTTP (http_auth_plain_loopback)
# to show what TLS costs. Cells are interleaved over --runs rounds; prints the median of each
# cell, its ratio to B6 at the same in-flight count, and the server's CPU per acknowledged write.
#
# usage: bench/rest_write.sh [--runs N] [-d SECONDS] [--inflight "8 64"] [--build DIR]
#                            [--dir DIR] [--json FILE]
# Every process started here is stopped by PID on exit. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
dur=5
inflight="8 64"
build="${HDL_BUILD_DIR:-build}"
dir=/tmp
json_out=
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs="$2"; shift 2 ;;
	-d) dur="$2"; shift 2 ;;
	--inflight) inflight="$2"; shift 2 ;;
	--build) build="$2"; shift 2 ;;
	--dir) dir="$2"; shift 2 ;;
	--json) json_out="$2"; shift 2 ;;
	*) echo "usage: $0 [--runs N] [-d SECONDS] [--inflight LIST] [--build DIR] [--dir DIR] [--json FILE]" >&2
	   exit 2 ;;
	esac
done
for b in idnoded idnode idnode-bench; do
	[ -x "$build/$b" ] || { echo "$0: $build/$b not built" >&2; exit 2; }
done

tmp=$(mktemp -d "$dir/idnode-rest-write.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

bash certs/make-dev-certs.sh "$tmp/certs" >/dev/null
"$build/idnode" import --db "$tmp/db" --home 88.100.1 seeds/demo.jsonl >/dev/null
printf secret >"$tmp/secret"
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
http=$(free_port)
cat >"$tmp/node.conf" <<CONF
tls_cert = $tmp/certs/server.pem
tls_key = $tmp/certs/server.key
http_auth_plain_loopback = yes
log_level = notice
CONF
pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin=(taskset -c 0)
	cli=(taskset -c 1)
else
	cli=()
fi
"${pin[@]}" "$build/idnoded" -c "$tmp/node.conf" --db "$tmp/db" --listen "127.0.0.1:$port" \
	--http "127.0.0.1:$http" --home 88.100.1 --workers 1 >"$tmp/node.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	grep -q "idnoded ready" "$tmp/node.log" && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/node.log" >&2; exit 3; }
	sleep 0.1
done

out="$tmp/results.jsonl"
: >"$out"
cell() { # NAME INFLIGHT ARGS...
	local name=$1 k=$2
	shift 2
	"${cli[@]}" "$build/idnode-bench" "$@" --op create --auth 300:0.NA/88.100.1 \
		--seckey-file "$tmp/secret" --pattern "88.100.1/$name-$k-r$r-%s" --range 1-10000000 \
		-d "$dur" --conns "$k" --depth 1 --timeout 10000 -P "$pid" --json |
		python3 -c 'import json,sys; j=json.load(sys.stdin); j["cell"]=sys.argv[1]; j["k"]=int(sys.argv[2]); print(json.dumps(j))' "$name" "$k" >>"$out"
}
for r in $(seq 1 "$runs"); do
	for k in $inflight; do
		cell b6-tcp "$k" -s "127.0.0.1:$port" --proto tcp
		cell rest-https "$k" -s "127.0.0.1:$http" --proto https --cacert "$tmp/certs/ca.pem"
		cell rest-http "$k" -s "127.0.0.1:$http" --proto rest
	done
done
[ -n "$json_out" ] && cp "$out" "$json_out"

python3 - "$out" "$runs" "$dur" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs, dur = sys.argv[2], sys.argv[3]
def med(xs):
    return statistics.median(xs) if xs else 0.0
cells = {}
for r in rows:
    w = r.get("write", {})
    cpu = (r.get("server") or {}).get("cpu_s", 0.0)
    acks = w.get("acks", 0)
    cells.setdefault((r["cell"], r["k"]), []).append(
        (w.get("acks_per_s", 0.0), w.get("ack_p50_us", 0.0), w.get("ack_p99_us", 0.0),
         1e6 * cpu / acks if acks else 0.0, r.get("lost", 0) + r.get("conn_errors", 0)))
print("REST writes vs B6, %s rounds x %s s, one worker, durable (write_sync = full)" % (runs, dur))
print("| cell | in flight | durable creates/s (median [min-max]) | vs B6 | ack p50 / p99 (ms) | server CPU us/create | errors |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for k in sorted(set(k for _, k in cells)):
    base = med([c[0] for c in cells.get(("b6-tcp", k), [])])
    for name, label in (("b6-tcp", "B6: Handle TCP, login per connection"),
                        ("rest-https", "REST PUT over HTTPS keep-alive, Basic"),
                        ("rest-http", "REST PUT over plain HTTP keep-alive, Basic")):
        v = cells.get((name, k), [])
        if not v:
            continue
        rates = [c[0] for c in v]
        print("| %s | %d | %.0f [%.0f-%.0f] | %.2f | %.1f / %.1f | %.0f | %d |" % (
            label, k, med(rates), min(rates), max(rates), med(rates) / base if base else 0.0,
            med([c[1] for c in v]) / 1e3, med([c[2] for c in v]) / 1e3,
            med([c[3] for c in v]), sum(c[4] for c in v)))
EOF
