#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Smoke test of the load harness and the benchmark suite: idnode-bench's guard and usage errors,
# its --json report against a UDP echo server, then `bench/run.sh --smoke` with 200 identifiers
# and 0.5 s cells, the B1/B5/B5s delegation cells and the B6 registration writes included (Knot
# DNS / nginx cells are skipped when those binaries are absent). A few seconds; runs end on request
# counts where they can, and nothing asserts a rate or a time, so a loaded box makes it slower,
# never wrong. Skips (exit 0) when idnoded / idnode are not built.
set -uo pipefail
SRC=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${HDL_BUILD_DIR:-$SRC/build}
BENCH=$BUILD/idnode-bench
fail() { echo "FAIL: $*" >&2; exit 1; }

[ -x "$BENCH" ] || fail "$BENCH not built"
for b in idnoded idnode udp_echo; do
	if [ ! -x "$BUILD/$b" ]; then
		echo "SKIP: $BUILD/$b not built"
		exit 0
	fi
done

# 1. the loopback guard and usage errors exit 2 without sending anything
timeout 10 "$BENCH" -s 10.0.0.1:2641 --pattern 'a/%s' --range 1-2 -d 1 >/dev/null 2>&1
[ $? = 2 ] || fail "a non-loopback target was not refused with exit 2"
timeout 10 "$BENCH" -s '[2001:db8::1]:2641' --pattern 'a/%s' --range 1-2 -d 1 >/dev/null 2>&1
[ $? = 2 ] || fail "a non-loopback IPv6 target was not refused with exit 2"
timeout 10 "$BENCH" -s 127.0.0.1:1 --pattern 'a/%s' --range 5-2 -d 1 >/dev/null 2>&1
[ $? = 2 ] || fail "a bad range was not refused with exit 2"
timeout 10 "$BENCH" -s 127.0.0.1:1 -d 1 >/dev/null 2>&1
[ $? = 2 ] || fail "missing keys were not refused with exit 2"
timeout 10 "$BENCH" -s 127.0.0.1:1 --pattern 'a/%s' --range 1-2 --proto gopher >/dev/null 2>&1
[ $? = 2 ] || fail "an unknown protocol was not refused with exit 2"
timeout 10 "$BENCH" -s 127.0.0.1:1 --pattern 'a..%s' --range 1-2 --proto dns -d 1 >/dev/null 2>&1
[ $? = 2 ] || fail "a key that cannot be encoded was not refused with exit 2"
timeout 10 "$BENCH" -s 127.0.0.1:1 --pattern 'a/%s' --range 1-2 --new-conn -d 1 >/dev/null 2>&1
[ $? = 2 ] || fail "--new-conn over UDP was not refused with exit 2"

# 2. --json against the echo server (a process we start and stop by PID)
TMP=$(mktemp -d /tmp/test_bench_smoke.XXXXXX)
ECHO_PID=
cleanup() {
	[ -n "$ECHO_PID" ] && kill "$ECHO_PID" 2>/dev/null && wait "$ECHO_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
"$BUILD/udp_echo" 127.0.0.1:0 >"$TMP/echo.out" 2>"$TMP/echo.err" &
ECHO_PID=$!
for _ in $(seq 1 50); do
	grep -q ready "$TMP/echo.out" 2>/dev/null && break
	sleep 0.1
done
PORT=$(awk '/ready/ {print $2}' "$TMP/echo.out")
[ -n "$PORT" ] || fail "udp_echo did not start"
# ends after 5000 requests (-d is only a bound); a reply counts as lost after 10 s, not 1 s
timeout 60 "$BENCH" -s "127.0.0.1:$PORT" --echo-ok --pattern '88.100.1/%s' --range 1-1000 -d 30 \
	-n 5000 -c 32 --timeout 10000 -P "$ECHO_PID" --json >"$TMP/echo.json" ||
	fail "idnode-bench against udp_echo failed"
python3 - "$TMP/echo.json" <<'PY' || fail "the --json report is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["proto"] == "udp" and d["mode"] == "closed", d
assert d["sent"] == 5000 and d["completed"] == 5000 and d["lost"] == 0, d
assert d["rcodes"] == {"ECHO": 5000}, d["rcodes"]
lat = d["latency_us"]
assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], lat
assert sum(c for _, c in d["histogram_ns"]) == 5000
assert d["server"]["pid"] > 0 and d["server"]["cpu_s"] >= 0
print("echo report ok:", d["completed"], "replies,", lat["p50"], "us p50")
PY
# open loop with a rate (how many it sends in the time depends on the box: not asserted)
timeout 20 "$BENCH" -s "127.0.0.1:$PORT" --echo-ok --pattern '88.100.1/%s' --range 1-1000 -d 0.5 \
	--rate 2000 --timeout 10000 --json >"$TMP/open.json" || fail "open-loop run failed"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["mode"]=="open" and 0 < d["completed"] <= d["sent"], d' "$TMP/open.json" \
	|| fail "the open-loop report is wrong"
# text report has the dnsperf-style lines
timeout 20 "$BENCH" -s "127.0.0.1:$PORT" --echo-ok --pattern '88.100.1/%s' --range 1-10 -d 10 -n 200 \
	--timeout 10000 >"$TMP/text.out" || fail "text run failed"
for w in "Requests   sent" "Responses " "Throughput offered" "p99.9" "Client CPU"; do
	grep -q "$w" "$TMP/text.out" || fail "text report lacks '$w'"
done
kill "$ECHO_PID" && wait "$ECHO_PID" 2>/dev/null
ECHO_PID=

# 3. the suite, smoke-sized: 200 identifiers, 0.5 s cells (a bound of minutes, not a budget;
#    shorter cells end before a worker thread starts on a box loaded by other work)
timeout 300 bash "$SRC/bench/run.sh" --smoke -d 0.5 --warmup 0 --count 200 --build "$BUILD" \
	>"$TMP/suite.out" 2>"$TMP/suite.err"
rc=$?
if [ $rc != 0 ]; then
	tail -30 "$TMP/suite.err" >&2
	fail "bench/run.sh --smoke exited $rc"
fi
grep -q "| B4 UDP resolve, uniform | idnoded |" "$TMP/suite.out" || fail "no B4 row in the suite table"
grep -q "| B3 REST GET keep-alive | idnoded |" "$TMP/suite.out" || fail "no B3 row in the suite table"
grep -q "| B2c connect per request" "$TMP/suite.out" || fail "no B2c row in the suite table"
grep -q "| B6 durable creates (write_sync full)[^|]*| idnoded |" "$TMP/suite.out" || fail "no B6 row in the suite table"
grep -q "| B6 baseline: LMDB alone[^|]*| lmdb_commit |" "$TMP/suite.out" || fail "no B6 LMDB row in the suite table"
grep -q "| B6 durable creates vs LMDB" "$TMP/suite.out" || fail "no B6 target in the suite table"
grep -q "B6 writer, write_sync full: writer (shutdown): [1-9][0-9]* job" "$TMP/suite.out" ||
	fail "no B6 writer figures in the notes"
grep -q "| B1 UDP resolve at a delegating node" "$TMP/suite.out" || fail "no B1 row in the suite table"
grep -q "| B5 UDP resolve, every query a miss" "$TMP/suite.out" || fail "no B5 row in the suite table"
grep -q "| B5s serve-stale" "$TMP/suite.out" || fail "no B5s row in the suite table"
grep -q "| B5s refreshes per key per hold interval |" "$TMP/suite.out" || fail "no B5s refresh figure"
echo "PASS"
