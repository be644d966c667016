#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Start (or stop) the three-node example of docs/delegation.md on loopback: a top-level node
# homing 88.100 on 127.0.0.10, secondary node A homing 88.100.1 on 127.0.0.11, secondary node B
# homing 88.100.2 on 127.0.0.12. A and B resolve each other's identifiers through the top-level
# node, over TLS with a development CA (certs/make-dev-certs.sh). Configurations come from
# deploy/three-nodes/; everything the nodes write goes to DIR.
#
#   scripts/three-nodes.sh start [DIR]   (default var/three-nodes; builds first if needed)
#   scripts/three-nodes.sh stop [DIR]    stop the nodes started there (by their PID files)
#
# Environment: IDNODE_PORT (UDP+TCP, 2641), IDNODE_TLS_PORT (2642), IDNODE_HTTP_PORT (8000),
# IDNODE_SITE_TTL (TTL of the HS_SITE values at the top, 3600 s), IDNODE_BUILD (build),
# IDNODE_TRANSPORT=tcp (upstream queries in the clear: only for builds without the TLS stream);
# for tests: IDNODE_EXTRA_TOP / _A / _B (configuration lines appended to that node's file) and
# IDNODE_TOP_DATA (a JSON Lines file of more records for the top-level node, same placeholders).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
cmd=${1:-}
dir=${2:-$top/var/three-nodes}
build=${IDNODE_BUILD:-$top/build}
udp=${IDNODE_PORT:-2641}
tls=${IDNODE_TLS_PORT:-2642}
http=${IDNODE_HTTP_PORT:-8000}
site_ttl=${IDNODE_SITE_TTL:-3600}
transport=${IDNODE_TRANSPORT:-tls}
nodes=(top a b)

stop() {
	local n pid
	for n in "${nodes[@]}"; do
		pid=$(cat "$dir/$n/idnoded.pid" 2>/dev/null) || continue
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			if kill -0 "$pid" 2>/dev/null; then
				kill -KILL "$pid"
			fi
			echo "node $n stopped"
		fi
		rm -f "$dir/$n/idnoded.pid"
	done
}

# A template from deploy/three-nodes/ with its placeholders filled in.
fill() {
	sed -e "s|@DIR@|$dir|g" -e "s|@UDP@|$udp|g" -e "s|@TLS@|$tls|g" -e "s|@HTTP@|$http|g" \
		-e "s|@SITE_TTL@|$site_ttl|g" "deploy/three-nodes/$1"
}

case "$cmd" in
stop)
	stop
	exit 0
	;;
start) ;;
*)
	echo "usage: $0 start|stop [DIR]" >&2
	exit 2
	;;
esac

if [ ! -x "$build/idnoded" ] || [ ! -x "$build/idnode" ]; then
	cmake -S . -B "$build" >/dev/null
	cmake --build "$build" -j"$(nproc)" --target idnoded idnode
fi
stop
mkdir -p "$dir"
bash certs/make-dev-certs.sh "$dir/certs" 127.0.0.10 127.0.0.11 127.0.0.12 >/dev/null
for n in "${nodes[@]}"; do
	rm -rf "${dir:?}/$n"
	mkdir -p "$dir/$n/db"
	fill "$n.conf" >"$dir/$n/idnoded.conf"
	extra_var="IDNODE_EXTRA_${n^^}"
	if [ -n "${!extra_var:-}" ]; then
		printf '%b\n' "${!extra_var}" | sed -e "s|@DIR@|$dir|g" -e "s|@UDP@|$udp|g" \
			-e "s|@TLS@|$tls|g" -e "s|@HTTP@|$http|g" >>"$dir/$n/idnoded.conf"
	fi
	if [ "$transport" = tcp ]; then
		# no TLS stream in this build: the upstreams are asked over plain TCP instead
		sed -i -e '/^tls_/d' -e "s|:$tls transport=tls ca=[^ ]*|:$udp transport=tcp|" -e 's/ sni=[^ ]*//' \
			-e 's/^resolver_site_plaintext = no/resolver_site_plaintext = yes/' \
			"$dir/$n/idnoded.conf"
	fi
done
fill top.jsonl >"$dir/top/data.jsonl"
if [ -n "${IDNODE_TOP_DATA:-}" ]; then
	sed -e "s|@DIR@|$dir|g" -e "s|@UDP@|$udp|g" -e "s|@TLS@|$tls|g" -e "s|@HTTP@|$http|g" \
		-e "s|@SITE_TTL@|$site_ttl|g" "$IDNODE_TOP_DATA" >>"$dir/top/data.jsonl"
fi
"$build/idnode" import --db "$dir/top/db" --home 88.100 "$dir/top/data.jsonl" >/dev/null
"$build/idnode" import --db "$dir/a/db" --home 88.100.1 seeds/demo.jsonl >/dev/null
"$build/idnode" gen --prefix 88.100.2 --count 1000 --seed 7 >"$dir/b/data.jsonl"
"$build/idnode" import --db "$dir/b/db" --home 88.100.2 "$dir/b/data.jsonl" >/dev/null

# start in order: top first (A and B ask it), then B, then A
for n in top b a; do
	"$build/idnoded" -c "$dir/$n/idnoded.conf" >"$dir/$n/idnoded.log" 2>&1 &
	for _ in $(seq 150); do
		grep -q "idnoded ready" "$dir/$n/idnoded.log" 2>/dev/null && break
		if ! kill -0 $! 2>/dev/null; then
			echo "node $n exited; see $dir/$n/idnoded.log:" >&2
			tail -20 "$dir/$n/idnoded.log" >&2
			stop
			exit 1
		fi
		sleep 0.1
	done
	grep -q "idnoded ready" "$dir/$n/idnoded.log" || { echo "node $n did not start" >&2; stop; exit 1; }
done
one=$("$build/idnode" gen --prefix 88.100.2 --count 1 --seed 7 --keys-only | head -1)
cat <<EOF
three nodes running in $dir (logs: $dir/*/idnoded.log), upstream transport $transport
  top 127.0.0.10  homes 88.100     (UDP+TCP $udp, TLS $tls, HTTP $http)
  A   127.0.0.11  homes 88.100.1
  B   127.0.0.12  homes 88.100.2
try (B's identifier asked at A):
  $build/idnode resolve -s 127.0.0.11:$udp --udp $one
  curl http://127.0.0.11:$http/api/handles/$one
  $build/idnode cache --socket $dir/a/control.sock stats
stop: scripts/three-nodes.sh stop $dir
EOF
