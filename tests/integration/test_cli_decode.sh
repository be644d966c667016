#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `idnode decode` over every capture in tests/captures (exit 0 and the fields of the capture
# README), `idnode resolve` against a tiny loopback responder (text, --json, not found), and the
# CLI exit codes (usage 2, network 3, malformed 4).
set -u

SRC=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${HDL_BUILD_DIR:-$SRC/build}
IDNODE=$BUILD/idnode
CAP=$SRC/tests/captures
TMP=$(mktemp -d)
SRV_PID=
fails=0

cleanup() {
	if [ -n "$SRV_PID" ]; then
		kill "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

# expect FILE PATTERN...: each pattern (fixed string) must appear in the decode output of FILE
expect() {
	local f=$1
	shift
	local out=$TMP/$(basename "$f").out
	for pat in "$@"; do
		grep -qF -- "$pat" "$out" || fail "$(basename "$f"): missing '$pat'"
	done
}

# expect_not FILE PATTERN: the pattern must not appear
expect_not() {
	grep -qF -- "$2" "$TMP/$(basename "$1").out" && fail "$(basename "$1"): unexpected '$2'"
	return 0
}

# expect_rc WANT CMD...: exit status of CMD must be WANT
expect_rc() {
	local want=$1
	shift
	"$@" >"$TMP/rc.out" 2>"$TMP/rc.err"
	local rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want ($(head -c 300 "$TMP/rc.err"))"
}

[ -x "$IDNODE" ] || { echo "no $IDNODE" >&2; exit 1; }

# ---- every capture decodes ----------------------------------------------------------------------
n=0
for f in "$CAP"/*.hex; do
	n=$((n + 1))
	if ! "$IDNODE" decode "$f" >"$TMP/$(basename "$f").out" 2>"$TMP/err"; then
		fail "decode $(basename "$f") exited non-zero: $(cat "$TMP/err")"
	fi
	grep -q "decode error" "$TMP/$(basename "$f").out" && fail "$(basename "$f"): decode error"
done
[ "$n" -ge 39 ] || fail "only $n captures found in $CAP"

# ---- fields per capture (tests/captures/README.upstream.md) ---------------------------------------
for f in java-hdllib-resolve-tcp java-hdllib-resolve-udp java-hdllib-HDLTrace-stock-udp; do
	expect "$CAP/$f.hex" "version: 2.11" "suggested version: 2.11" \
		"opcode: OC_RESOLUTION (1)" "opflags: 0x19000000 REC|CA|PO" "site serial: 1 (0x0001)" \
		'handle: "88.100.1/test"' "indexes: [] (0)" "types: [] (0)" "trailing body bytes: 0" \
		"credential: length 0" "body length: 25"
done
expect "$CAP/java-hdllib-resolve-typed-tcp.hex" "opflags: 0x99000000 AT|REC|CA|PO" \
	"indexes: [1,2] (2)" "types: [URL,EMAIL] (2)" "body length: 49"
expect "$CAP/java-hdllib-resolve-certify-tcp.hex" "opflags: 0x59000000 CT|REC|CA|PO"
expect "$CAP/java-hdllib-resolve-hdlhttp.hex" "HTTP request:" "POST /88.100.1%2Ftest HTTP/1.1" \
	"Content-Type: application/x-hdl-message" "Content-Length: 73" \
	"opcode: OC_RESOLUTION (1)" 'handle: "88.100.1/test"' "credential: length 0"
expect "$CAP/java-hdllib-siteinfo-tcp.hex" "opcode: OC_GET_SITEINFO (2)" 'handle: "/"'
expect "$CAP/idpointer-sdk-resolve-tcp.hex" "version: 2.10" "suggested version: 2.11" \
	"site serial: 65535 (0xffff)" "body length: 29" "trailing body bytes: 4 00000000" \
	'handle: "88.100.1/test"'
expect "$CAP/idpointer-sdk-login-seckey-tcp-1-request.hex" "opcode: OC_GET_SITEINFO (2)" 'handle: "/"'
expect "$CAP/idpointer-sdk-login-seckey-tcp-3-answer.hex" "opcode: OC_LOGIN_ID_SYSTEM (2001)" \
	"identity: 0.NA/88.100:300" "credential: absent" "message length: 43" "body length: 19"
expect "$CAP/java-hdllib-sessionsetup-tcp.hex" "opcode: OC_SESSION_SETUP (400)" \
	"opflags: 0x59800000 CT|REC|CA|PO|RD" "mode: 4 Diffie-Hellman" "timeout: 86400" \
	"identity: 0.NA/88.100:300" '"DH_PUB_KEY"' "trailing body bytes: 2 0000"
check_admin() { # op "OPCODE (N)"
	local op=$1 oc=$2
	expect "$CAP/java-hdllib-$op-seckey-tcp-1-request.hex" "opcode: $oc" "response code: 0 (request)"
	expect "$CAP/java-hdllib-$op-seckey-tcp-2-challenge.hex" "opcode: $oc" \
		"response code: AUTHENTICATION_NEEDED (402)" "request digest: " "nonce: 16 bytes"
	expect "$CAP/java-hdllib-$op-seckey-tcp-3-answer.hex" "opcode: OC_CHALLENGE_RESPONSE (200)" \
		'auth type: "HS_SECKEY"' "identity: 0.NA/88.100:300" "algorithm: 0x22 PBKDF2-HMAC-SHA1" \
		"salt: 16 bytes" "iterations: 10000" "key bits: 160" "mac: 20 bytes" \
		"session id: 4660 (0x00001234)" "site serial: 65535 (0xffff)"
}
check_admin create "OC_CREATE_HANDLE (100)"
check_admin delete "OC_DELETE_HANDLE (101)"
check_admin addvalue "OC_ADD_VALUE (102)"
check_admin removevalue "OC_REMOVE_VALUE (103)"
check_admin modifyvalue "OC_MODIFY_VALUE (104)"
check_admin listhandles "OC_LIST_HANDLES (105)"
check_admin homeprefix "OC_HOME_NA (300)"
expect "$CAP/java-hdllib-create-seckey-tcp-1-request.hex" 'handle: "88.100.1/test"' \
	"HS_ADMIN  86400  rwr-  0.NA/88.100:300 perms=0x0fff" "URL  86400  rwr-  http://example.org/"
expect "$CAP/java-hdllib-removevalue-seckey-tcp-1-request.hex" "indexes: [2] (1)"
expect "$CAP/java-hdllib-homeprefix-seckey-tcp-1-request.hex" 'handle: "0.NA/'
expect "$CAP/java-hdllib-create-pubkey-tcp-3-answer.hex" 'auth type: "HS_PUBKEY"' \
	'hash algorithm: "SHA-256"' "signature length: 256"
expect "$CAP/pyhandle-rest.requests.hex" "GET /api/handles/88.100.1/test HTTP/1.1" \
	"PUT /api/handles/88.100.1/new?overwrite=false HTTP/1.1" \
	"DELETE /api/handles/88.100.1/new?index=2 HTTP/1.1" '"format": "admin"'
expect "$CAP/handlenetnode-rest.requests.hex" "POST /api/sessions/this HTTP/1.1" \
	'Authorization: Handle version="0"'
expect "$CAP/codeobia-rest.requests.hex" "PUT /api/handles/88.100/cc5a88?overwrite=false HTTP/1.1" \
	'"legacyByteLength":true'
for f in "$CAP"/*.hex; do
	expect_not "$f" "not a Handle message"
done

# ---- input forms: plain hex and raw bytes give the same decode ------------------------------------
xxd -r "$CAP/java-hdllib-resolve-typed-tcp.hex" >"$TMP/typed.bin"
xxd -p "$TMP/typed.bin" >"$TMP/typed.txt"
"$IDNODE" decode "$TMP/typed.bin" | sed 1d >"$TMP/raw.out" || fail "decode raw"
"$IDNODE" decode "$TMP/typed.txt" | sed 1d >"$TMP/plain.out" || fail "decode plain hex"
"$IDNODE" decode - <"$CAP/java-hdllib-resolve-typed-tcp.hex" | sed 1d >"$TMP/stdin.out" ||
	fail "decode stdin"
cmp -s "$TMP/raw.out" "$TMP/plain.out" || fail "raw and plain hex decodes differ"
cmp -s "$TMP/raw.out" "$TMP/stdin.out" || fail "raw and xxd (stdin) decodes differ"
grep -qF "types: [URL,EMAIL] (2)" "$TMP/raw.out" || fail "raw decode lacks the type list"
# two frames back to back
cat "$TMP/typed.bin" "$TMP/typed.bin" >"$TMP/two.bin"
"$IDNODE" decode "$TMP/two.bin" >"$TMP/two.out" || fail "decode of two frames"
[ "$(grep -c '^== message' "$TMP/two.out")" -eq 2 ] || fail "two frames not both decoded"

# ---- exit codes ------------------------------------------------------------------------------
expect_rc 2 "$IDNODE"
expect_rc 2 "$IDNODE" no-such-command
expect_rc 0 "$IDNODE" --help
expect_rc 0 "$IDNODE" --version
expect_rc 2 "$IDNODE" resolve
expect_rc 2 "$IDNODE" resolve --bogus 88.100.1/test
expect_rc 2 "$IDNODE" resolve --udp --tcp 88.100.1/test
expect_rc 2 "$IDNODE" resolve -s 127.0.0.1:99999 88.100.1/test
expect_rc 2 "$IDNODE" resolve -s '[::1' 88.100.1/test
expect_rc 2 "$IDNODE" resolve -i x 88.100.1/test
expect_rc 2 "$IDNODE" decode
expect_rc 3 "$IDNODE" decode "$TMP/does-not-exist"
printf 'this is not a handle message at all\n' >"$TMP/garbage.txt"
expect_rc 4 "$IDNODE" decode "$TMP/garbage.txt"
head -c 30 "$TMP/typed.bin" >"$TMP/short.bin"
expect_rc 4 "$IDNODE" decode "$TMP/short.bin"

# a port nothing listens on
FREE=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
expect_rc 3 "$IDNODE" resolve --tcp --timeout 1000 -s "127.0.0.1:$FREE" 88.100.1/test
grep -q "HDL_ECONNREFUSED" "$TMP/rc.err" || fail "refused TCP: no HDL_ECONNREFUSED message"
expect_rc 3 "$IDNODE" resolve --timeout 1000 -s "127.0.0.1:$FREE" 88.100.1/test
expect_rc 3 "$IDNODE" resolve --http --timeout 1000 -s "127.0.0.1:$FREE" 88.100.1/test

# ---- resolve against a small loopback responder (TCP + UDP, one port) ------------------------------
cat >"$TMP/srv.py" <<'EOF'
import socket, struct, sys, threading, time

def s(b): return struct.pack(">I", len(b)) + b

def value(idx, typ, data):
    return (struct.pack(">IIBIB", idx, 0x65000000, 0, 86400, 0x0E) + s(typ) + s(data)
            + struct.pack(">I", 0))

def answer(req):
    rid = req[8:12]
    op, = struct.unpack(">I", req[20:24])
    hl, = struct.unpack(">I", req[44:48])
    handle = req[48:48 + hl]
    if handle == b"88.100.1/test":
        adm = struct.pack(">H", 0x0FFF) + s(b"0.NA/88.100") + struct.pack(">I", 300)
        site = (struct.pack(">HBBHBB", 1, 2, 10, 1, 0x80, 2) + s(b"")
                + struct.pack(">I", 1) + s(b"desc") + s(b"test site")
                + struct.pack(">II", 1, 1) + bytes(12) + bytes([127, 0, 0, 1]) + s(b"")
                + struct.pack(">I", 2) + struct.pack(">BBI", 3, 1, 2641)
                + struct.pack(">BBI", 2, 0, 2641))
        body = s(handle) + struct.pack(">I", 4) + value(1, b"URL", b"http://example.org/") \
            + value(100, b"HS_ADMIN", adm) + value(2, b"HS_SITE", site) \
            + value(3, b"BIN", b"\x00\x01\xff")
        rc = 1
    else:
        body = s(b"no such handle")
        rc = 100
    hdr = struct.pack(">IIIHBBII", op, rc, 0x19000000, 1, 0, 0, int(time.time()) + 43200, len(body))
    msg = hdr + body + struct.pack(">I", 0)
    return bytes([2, 11, 2, 11]) + b"\0\0\0\0" + rid + b"\0\0\0\0" + struct.pack(">I", len(msg)) + msg

def tcp_loop(ls):
    while True:
        c, _ = ls.accept()
        c.settimeout(2)
        try:
            buf = b""
            while len(buf) < 20:
                buf += c.recv(4096)
            n, = struct.unpack(">I", buf[16:20])
            while len(buf) < 20 + n:
                buf += c.recv(4096)
            c.sendall(answer(buf))
        except Exception:
            pass
        c.close()

def http_loop(hs):
    while True:
        c, _ = hs.accept()
        c.settimeout(2)
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.recv(4096)
            head, body = buf.split(b"\r\n\r\n", 1)
            n = int([l.split(b":")[1] for l in head.split(b"\r\n")
                     if l.lower().startswith(b"content-length:")][0])
            while len(body) < n:
                body += c.recv(4096)
            ans = answer(body)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-hdl-message\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(ans) + ans)
        except Exception:
            pass
        c.close()

def udp_loop(us):
    while True:
        d, peer = us.recvfrom(512)
        try:
            us.sendto(answer(d), peer)
        except Exception:
            pass

for _ in range(20):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0)); port = ls.getsockname()[1]
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        us.bind(("127.0.0.1", port)); break
    except OSError:
        ls.close(); us.close()
ls.listen(8)
threading.Thread(target=tcp_loop, args=(ls,), daemon=True).start()
threading.Thread(target=udp_loop, args=(us,), daemon=True).start()
hs = socket.socket(); hs.bind(("127.0.0.1", 0)); hs.listen(8)
threading.Thread(target=http_loop, args=(hs,), daemon=True).start()
with open(sys.argv[1] + ".tmp", "w") as f: f.write("%d %d" % (port, hs.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
EOF
python3 "$TMP/srv.py" "$TMP/port" &
SRV_PID=$!
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
read -r PORT HPORT <"$TMP/port" 2>/dev/null
if [ -z "${PORT:-}" ] || [ -z "${HPORT:-}" ]; then
	fail "responder did not start"
else
	for tr in --udp --tcp --http; do
		p=$PORT
		[ "$tr" = --http ] && p=$HPORT
		expect_rc 0 "$IDNODE" resolve $tr -s "127.0.0.1:$p" 88.100.1/test
		# columns aligned: index, type and TTL padded to the widest of the answer
		grep -qE '^1   URL       86400  rwr-  http://example.org/$' "$TMP/rc.out" ||
			fail "resolve $tr: URL line: $(cat "$TMP/rc.out")"
		grep -qE '^100 HS_ADMIN  86400  rwr-  0.NA/88.100:300 perms=0x0fff$' "$TMP/rc.out" ||
			fail "resolve $tr: HS_ADMIN line: $(cat "$TMP/rc.out")"
		grep -qF 'HS_SITE   86400  rwr-  site v2.10 serial=1 primary servers=1 [1 127.0.0.1 tcp/2641 udp/2641] desc=test site' \
			"$TMP/rc.out" || fail "resolve $tr: HS_SITE line: $(cat "$TMP/rc.out")"
		grep -qE '^3   BIN       86400  rwr-  hex:0001ff$' "$TMP/rc.out" ||
			fail "resolve $tr: binary line: $(cat "$TMP/rc.out")"
	done
	expect_rc 0 "$IDNODE" resolve --json -s "127.0.0.1:$PORT" 88.100.1/test
	python3 - "$TMP/rc.out" <<'EOF' || fail "resolve --json: $(cat "$TMP/rc.out")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["responseCode"] == 1 and j["handle"] == "88.100.1/test", j
v = {x["index"]: x for x in j["values"]}
assert v[1]["type"] == "URL" and v[1]["data"]["value"] == "http://example.org/", v
assert v[100]["type"] == "HS_ADMIN" and v[100]["data"]["format"] == "admin", v
assert v[100]["data"]["value"]["handle"] == "0.NA/88.100" and v[100]["data"]["value"]["index"] == 300, v
EOF
	expect_rc 1 "$IDNODE" resolve --tcp -s "127.0.0.1:$PORT" 88.100.1/none
	grep -qF "error: HANDLE_NOT_FOUND (100)" "$TMP/rc.err" || fail "not found message: $(cat "$TMP/rc.err")"
	expect_rc 1 "$IDNODE" resolve --json -s "127.0.0.1:$PORT" 88.100.1/none
	grep -qF '"responseCode":100' "$TMP/rc.out" || fail "not found JSON: $(cat "$TMP/rc.out")"
	# RD asked but the responder sends no digest: malformed answer
	expect_rc 4 "$IDNODE" resolve --digest --tcp -s "127.0.0.1:$PORT" 88.100.1/test
	grep -q HDL_EDIGEST "$TMP/rc.err" || fail "--digest without digest: $(cat "$TMP/rc.err")"
fi

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed" >&2
	exit 1
fi
echo "ok: $n captures decoded, CLI checks passed"
