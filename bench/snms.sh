#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SNMS batch registration beside binary-protocol creates, same node, same run, interleaved over
# --runs rounds; prints the median of each cell and its ratio to the binary creates.
#
#   snms batchCreate   one POST /identityv2/data/batchCreate of --items new identifiers (each
#                      with 6 values checked against the demo gearbox template), answered when
#                      durable; items per second of the whole call
#   snms retried       the same call again: every item an idempotent success, nothing written
#   binary create      idnode-bench --op create over TCP (IDIS login per connection, 8 x 8 in
#                      flight, one 100-byte value, no template), acks per second
#
# usage: bench/snms.sh [--runs N] [--items N] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
items=2000
build="${HDL_BUILD_DIR:-build}"
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs="$2"; shift 2 ;;
	--items) items="$2"; shift 2 ;;
	--build) build="$2"; shift 2 ;;
	*) echo "usage: $0 [--runs N] [--items N] [--build DIR]" >&2; exit 2 ;;
	esac
done
for b in idnoded idnode idnode-bench; do
	[ -x "$build/$b" ] || { echo "$0: $build/$b not built" >&2; exit 2; }
done

tmp=$(mktemp -d)
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

db=$tmp/db
"$build/idnode" import --db "$db" --home 88.100.1 seeds/demo.jsonl 2>/dev/null
"$build/idnode" template load --db "$db" seeds/templates/*.json >/dev/null
printf 'secret' >"$tmp/secret"
read -r tcp http < <(python3 -c '
import socket
ps = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ps.append(s)
print(*[s.getsockname()[1] for s in ps])')
{
	echo secret | "$build/idnode" passwd --iterations 1000 --user bench --id 300:0.NA/88.100.1
	echo "http_max_body = 8m"
	echo "http_auth_plain_loopback = yes" # the bench speaks plain HTTP on loopback
	echo "workers = 2"
	# idnode-bench's IDIS login keeps its connection: with the default (auto) the node closes
	# it after the login's answer and the bench reconnects forever
	echo "tcp_close_after_answer = no"
} >"$tmp/node.conf"
"$build/idnoded" -c "$tmp/node.conf" --db "$db" --listen "127.0.0.1:$tcp" \
	--http "127.0.0.1:$http" --home 88.100.1 >"$tmp/node.log" 2>&1 &
pid=$!
for _ in $(seq 150); do
	grep -q "idnoded ready" "$tmp/node.log" && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/node.log" >&2; exit 1; }
	sleep 0.1
done

out=$tmp/rows.jsonl
for r in $(seq 1 "$runs"); do
	python3 - "$http" "$items" "$r" >>"$out" <<'EOF'
import http.client, json, sys, time
port, n, rnd = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
c.request("POST", "/identity/token", body=json.dumps({"username": "bench", "password": "secret"}))
tok = json.loads(c.getresponse().read())["data"]["token"]
def sv(i, t, v):
    return {"index": i, "type": t, "data": {"format": "string", "value": v}, "auth": ""}
items = [{"handle": "88.100.1/BENCH-%d-%06d" % (rnd, i), "templateVersion": "gearbox-1.0",
          "value": [sv(2000, "PRODUCT_NAME", "减速机"), sv(2001, "MODEL", "ZLY%d" % i),
                    sv(2003, "PRODUCTION_DATE", "2025-01-01"), sv(2004, "MANUFACTURER", "ACME"),
                    sv(2005, "RATIO", "10"), sv(2006, "TORQUE", "100")]} for i in range(n)]
body = json.dumps(items)
for cell in ("snms batchCreate", "snms retried"):
    t0 = time.time()
    c.request("POST", "/identityv2/data/batchCreate", body=body,
              headers={"Authorization": "Bearer " + tok})
    res = json.loads(c.getresponse().read())
    dt = time.time() - t0
    ok = sum(1 for d in res["data"] if d["code"] == 1)
    print(json.dumps({"cell": cell, "items": n, "ok": ok, "s": dt, "rate": n / dt}))
EOF
	"$build/idnode-bench" -s "127.0.0.1:$tcp" --proto tcp --json --op create \
		--auth 300:0.NA/88.100.1 --seckey-file "$tmp/secret" --seckey-alg hmac-sha256 \
		--pattern "88.100.1/BIN-$r-%s" --range "1-$items" -d 60 --conns 8 --depth 8 \
		--value-size 100 --timeout 20000 2>/dev/null |
		python3 -c 'import json,sys; d=json.load(sys.stdin); w=d["write"];
print(json.dumps({"cell": "binary create", "items": w["acks"], "ok": d["rcodes"].get("SUCCESS", 0), "s": 0, "rate": w["acks_per_s"]}))' >>"$out"
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(cell, key="rate"):
    return statistics.median(r[key] for r in rows if r["cell"] == cell)
base = med("binary create")
print("| cell | items/s (median) | vs binary create | answer (median) | items ok |")
print("|---|---|---|---|---|")
for cell in ("snms batchCreate", "snms retried", "binary create"):
    rs = [r for r in rows if r["cell"] == cell]
    ans = "%.3f s" % med(cell, "s") if cell != "binary create" else "-"
    print("| %s | %.0f | %.2f | %s | %d/%d |" % (cell, med(cell), med(cell) / base, ans,
          min(r["ok"] for r in rs), rs[0]["items"]))
print("(%d rounds, %d items per call, medians)" % (len(rows) // 3, rows[0]["items"]))
EOF
