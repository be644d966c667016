#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Set up and start a working idnode with the demo data (embedded LMDB, no other service).
#   scripts/demo.sh            install deps, build, load seeds/demo.jsonl, make development TLS
#                              certificates in var/certs (certs/make-dev-certs.sh), start idnoded
#                              in the background on 127.0.0.1:2641 (UDP+TCP), 127.0.0.1:8000
#                              (HTTP and HTTPS on one port) and 127.0.0.1:2642 (the TLS stream)
#   scripts/demo.sh --foreground   same, but run idnoded in the foreground
#   scripts/demo.sh stop       stop the demo node started before (by its PID file)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
var="$top/var"
pidfile="$var/idnoded.pid"

stop() {
	local pid
	pid=$(cat "$pidfile" 2>/dev/null) || return 0
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		echo "idnoded stopped"
	fi
	rm -f "$pidfile"
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

bash scripts/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target idnoded idnode idnode-bench
stop
mkdir -p "$var"
rm -rf "$var/demo-db"
build/idnode import --db "$var/demo-db" --home 88.100.1 seeds/demo.jsonl
# metadata templates of the demo prefix (pump, gearbox, valve, motor), then two identifiers that
# follow them (docs/snms-api.md)
build/idnode template load --db "$var/demo-db" seeds/templates/*.json
build/idnode import --db "$var/demo-db" seeds/templated.jsonl
# the SNMS API: user demo, password secret (demo only), acting as the prefix admin; a 2000-item
# batch with a few values each is over 1 MiB, so bodies up to 8 MiB
echo secret | build/idnode passwd --user demo --id 300:0.NA/88.100.1 >"$var/demo.conf"
echo "http_max_body = 8m" >>"$var/demo.conf"

# development certificates (a throw-away CA; never for production): HTTPS on 8000, TLS on 2642
bash certs/make-dev-certs.sh "$var/certs" >/dev/null

args=(-c "$var/demo.conf" --db "$var/demo-db" --listen 127.0.0.1:2641 --http 127.0.0.1:8000
	--home 88.100.1 --tls-cert "$var/certs/server.pem" --tls-key "$var/certs/server.key"
	--tls-listen 127.0.0.1:2642)
if [ "${1:-}" = --foreground ]; then
	exec build/idnoded "${args[@]}"
fi
build/idnoded "${args[@]}" --pidfile "$pidfile" >"$var/idnoded.log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"
for _ in $(seq 100); do
	if build/idnode resolve -s 127.0.0.1:2641 --tcp --timeout 200 88.100.1/PUMP-2024-000123 >/dev/null 2>&1; then
		echo "idnoded running (pid $pid, log $var/idnoded.log)"
		echo "try: build/idnode resolve -s 127.0.0.1:2641 --udp 88.100.1/PUMP-2024-000123"
		echo "     curl http://127.0.0.1:8000/api/handles/88.100.1/PUMP-2024-000123"
		echo "     curl --cacert var/certs/ca.pem https://127.0.0.1:8000/api/handles/88.100.1/PUMP-2024-000123"
		echo "     (administration over HTTPS: README.md, \"REST administration\")"
		echo "register (demo secret, see README.md \"Registration quick start\"):"
		echo "     build/idnode create --auth 300:0.NA/88.100.1 --seckey-file seeds/demo-admin.secret -s 127.0.0.1:2641 88.100.1/NEW-1 URL=https://example.com/p/NEW-1"
		echo "     build/idnode audit --db var/demo-db"
		echo "     curl --cacert var/certs/ca.pem -XPOST https://127.0.0.1:8000/identity/token -d '{\"username\":\"demo\",\"password\":\"secret\"}'"
		echo "stop: scripts/demo.sh stop"
		exit 0
	fi
	kill -0 "$pid" 2>/dev/null || { echo "idnoded exited; see $var/idnoded.log" >&2; cat "$var/idnoded.log" >&2; exit 1; }
	sleep 0.1
done
echo "idnoded did not answer within 10 s; see $var/idnoded.log" >&2
exit 1
