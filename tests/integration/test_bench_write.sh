#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# idnode-bench write modes (--op create|modify|delete) against tests/lib/mock_admin.py, a
# loopback server that challenges every admin request and verifies the answers itself: IDIS
# login once per connection, per-request challenge answers (HMAC-SHA256 and hdllib's PBKDF2),
# no credentials, a refused login, and the usage errors. Bounded: every run has -d and a count.
set -u

SRC=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${HDL_BUILD_DIR:-$SRC/build}
BENCH=$BUILD/idnode-bench
. "$SRC/tests/lib/mock_admin.sh"

printf 'secret\n' >"$TMP/secret"
printf 'wrong\n' >"$TMP/wrong"
LOG=$TMP/mock.log
: >"$LOG"
mock_start --secret "$TMP/secret" --log "$LOG"
S=$MOCK_ADDR
AUTH=(--auth 300:0.NA/88.100 --seckey-file "$TMP/secret")

# bench NAME WANT_RC args...: the JSON report in $TMP/r.json
bench() {
	local name=$1 want=$2
	shift 2
	timeout 60 "$BENCH" -s "$S" --proto tcp --json --timeout 10000 "$@" >"$TMP/r.json" \
		2>"$TMP/err"
	local rc=$?
	[ "$rc" = "$want" ] || fail "$name: exit $rc, want $want: $(head -c 300 "$TMP/err")"
}

# report EXPR: a Python expression over `d` (the JSON report) and `log` (the mock's entries)
report() {
	python3 - "$TMP/r.json" "$LOG" "$1" <<'EOF' || fail "report: $1: $(head -c 600 "$TMP/r.json")"
import json, sys
d = json.load(open(sys.argv[1]))
log = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
sys.exit(0 if eval(sys.argv[3], {"d": d, "log": log}) else 1)
EOF
}

# 1. create with an IDIS login per connection: every key once, no challenge per request
bench create-login 0 --op create "${AUTH[@]}" --pattern '88.100.1/w%s' --range 1-300 -d 20 \
	--conns 2 --depth 8 --value-size 200
report 'd["completed"] == 300 and d["rcodes"] == {"SUCCESS": 300} and d["write"]["logins"] == 2'
report 'd["write"]["op"] == "create" and d["write"]["auth"] == "login" and d["write"]["acks"] == 300'
report 'd["write"]["acks_per_s"] > 0 and d["write"]["ack_p99_us"] >= d["write"]["ack_p50_us"] > 0'
report 'sum(1 for e in log if e.get("op") == 2001 and e["ok"]) == 2'
report 'sum(1 for e in log if e.get("op") == 100 and e.get("challenged") is False) == 300'
report 'len(set(e["handle"] for e in log if e.get("op") == 100)) == 300'
# persistent connections: every request says KC (a 2.11 request without it is answered and closed)
report 'all(e["opflags"] & 0x02000000 for e in log if e.get("op") == 100)'

# 2. modify, answering every challenge on its connection (HMAC-SHA256)
: >"$LOG"
bench modify-per-request 0 --op modify "${AUTH[@]}" --auth-per-request --seckey-alg hmac-sha256 \
	--pattern '88.100.1/w%s' --range 1-300 -d 20 -n 60 --conns 2 --depth 4
report 'd["rcodes"] == {"SUCCESS": 60} and d["write"]["challenges"] == 60 and d["write"]["logins"] == 0'
report 'all(e["alg"] == 0x13 and e["ok"] and e["conn"] == "same" for e in log) and len(log) == 60'

# 3. delete per request with hdllib's PBKDF2 answer, then the rest after a login
: >"$LOG"
bench delete-pbkdf2 0 --op delete "${AUTH[@]}" --auth-per-request --pattern '88.100.1/w%s' \
	--range 1-20 -d 20 --conns 1 --depth 2
report 'd["rcodes"] == {"SUCCESS": 20} and all(e["alg"] == 0x22 and e["ok"] for e in log)'
bench delete-rest 0 --op delete "${AUTH[@]}" --pattern '88.100.1/w%s' --range 1-300 -d 20
report 'd["rcodes"] == {"HANDLE_NOT_FOUND": 20, "SUCCESS": 280}'

# 4. no credentials: the challenge is the answer; a refused login sends nothing
bench open 0 --op create --pattern '88.100.1/o%s' --range 1-10 -d 20
report 'd["rcodes"] == {"AUTHENTICATION_NEEDED": 10} and d["write"]["auth"] == "none"'
bench refused-login 1 --op create --auth 300:0.NA/88.100 --seckey-file "$TMP/wrong" \
	--seckey-alg hmac-sha256 --conns 1 --depth 1 --pattern '88.100.1/r%s' --range 1-10 -d 3
report 'd["completed"] == 0 and d["write"]["auth_failures"] >= 1 and d["write"]["logins"] == 0'

# 5. usage (exit 2) and setup (exit 3) errors
bench udp 2 --op create "${AUTH[@]}" --proto udp --pattern 'a/%s' --range 1-2 -d 1
bench new-conn 2 --op create "${AUTH[@]}" --new-conn --pattern 'a/%s' --range 1-2 -d 1
bench bad-op 2 --op upsert --pattern 'a/%s' --range 1-2 -d 1
bench no-cred 2 --op create --auth 300:0.NA/88.100 --pattern 'a/%s' --range 1-2 -d 1
bench no-auth 2 --op create --auth-per-request --pattern 'a/%s' --range 1-2 -d 1
bench no-op 2 "${AUTH[@]}" --pattern 'a/%s' --range 1-2 -d 1
bench overwrite-modify 2 --op modify --overwrite --pattern 'a/%s' --range 1-2 -d 1
bench bad-alg 2 --op create "${AUTH[@]}" --seckey-alg rot13 --pattern 'a/%s' --range 1-2 -d 1
bench no-secret 3 --op create --auth 300:0.NA/88.100 --seckey-file "$TMP/none" \
	--pattern 'a/%s' --range 1-2 -d 1

finish test_bench_write
