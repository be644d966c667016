#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The authenticated admin commands of `idnode` (create, add, modify, remove, list, home, unhome,
# delete, keygen) against tests/lib/mock_admin.py, a scripted loopback server that challenges
# every request and verifies the answers itself (Python hashlib for HS_SECKEY, the openssl CLI
# for HS_PUBKEY). Checks what the server received (its JSON log), what idnode prints, and the
# exit codes: 0 ok, 1 error answer, 2 usage, 3 network / unreadable file, 4 malformed data.
#
# Against the real idnoded (tests/integration/test_cli_admin_node.py): HDL_ADMIN_SERVER=HOST:PORT,
# the identity 300:0.NA/88.100 with secret "secret" there, HDL_ADMIN_PRIVKEY a PEM key whose
# public half the node holds under HDL_ADMIN_PUB_ID (INDEX:HANDLE), HDL_ADMIN_CNRI_ID the
# identity holding tests/data/admpub.bin; the mock's log checks are skipped then.
set -u

SRC=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${HDL_BUILD_DIR:-$SRC/build}
IDNODE=$BUILD/idnode
. "$SRC/tests/lib/mock_admin.sh"

if ! command -v openssl >/dev/null 2>&1; then
	echo "skipped: openssl CLI not found"
	exit 0
fi

# ---- keys and the mock ----------------------------------------------------------------------
printf 'secret\n' >"$TMP/secret"
printf 'wrong\n' >"$TMP/wrong"
"$IDNODE" keygen --out-priv "$TMP/adm.pem" --out-pub "$TMP/adm.bin" >"$TMP/adm.json" ||
	fail "keygen rsa"
grep -q '"type":"HS_PUBKEY"' "$TMP/adm.json" && grep -q '"kty":"RSA"' "$TMP/adm.json" ||
	fail "keygen prints the HS_PUBKEY JSON value"
[ "$(stat -c %a "$TMP/adm.pem")" = 600 ] || fail "keygen private key mode 0600"
openssl pkey -in "$TMP/adm.pem" -pubout -out "$TMP/adm.pub.pem" 2>/dev/null || fail "keygen PEM"
"$IDNODE" keygen --out-priv "$TMP/adm.pem" --out-pub "$TMP/x.bin" >/dev/null 2>&1
[ $? = 3 ] || fail "keygen refuses to overwrite"

PUB_ID=${HDL_ADMIN_PUB_ID:-300:0.NA/88.100}
CNRI_ID=${HDL_ADMIN_CNRI_ID:-300:0.NA/88.100}
if [ -n "${HDL_ADMIN_SERVER:-}" ]; then
	SERVER=$HDL_ADMIN_SERVER
	LOG=
	# the node knows this key, not the one keygen made above
	[ -n "${HDL_ADMIN_PRIVKEY:-}" ] && cp "$HDL_ADMIN_PRIVKEY" "$TMP/adm.pem"
else
	LOG=$TMP/mock.log
	: >"$LOG"
	mock_start --secret "$TMP/secret" --pubkey "$TMP/adm.pub.pem" \
		--pubkey "$SRC/tests/data/admpub.bin.pem" --log "$LOG"
	SERVER=$MOCK_ADDR
fi

SEC=(-s "$SERVER" --auth 300:0.NA/88.100 --seckey-file "$TMP/secret" --timeout 10000)

# run NAME WANT_RC idnode-args...: stdout in $TMP/out, stderr in $TMP/err
run() {
	local name=$1 want=$2
	shift 2
	"$IDNODE" "$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	[ "$rc" = "$want" ] || fail "$name: exit $rc, want $want: $(head -c 300 "$TMP/err")"
}

# logged EXPR: a Python expression over `e` (the mock's last log entry) must hold
logged() {
	[ -z "$LOG" ] && return 0
	python3 - "$LOG" "$1" <<'EOF' || fail "mock log: $1 (last entry: $(tail -1 "$LOG"))"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
e = lines[-1] if lines else {}
sys.exit(0 if eval(sys.argv[2], {"e": e, "lines": lines}) else 1)
EOF
}

# ---- create / add / modify / remove ----------------------------------------------------------
run create 0 create "${SEC[@]}" 88.100.1/a 'URL=http://example.org/a' '2:EMAIL=a@example.org' \
	'HS_ADMIN=300:0.NA/88.100' '{"index":7,"type":"DESC","data":"seven"}'
[ "$(cat "$TMP/out")" = 88.100.1/a ] || fail "create prints the handle: $(cat "$TMP/out")"
# auto indexes: URL takes 1, HS_ADMIN 3 (2 and 7 are given)
logged 'e["op"] == 100 and e["ok"] and e["auth"] == "HS_SECKEY" and e["alg"] == 0x22 and e["conn"] == "new"'
logged '[v[0] for v in e["values"]] == [1, 2, 3, 7] and e["values"][2][1] == "HS_ADMIN"'
logged 'bytes.fromhex(e["values"][2][2]) == b"\x0f\xff" + b"\x00\x00\x00\x0b0.NA/88.100" + (300).to_bytes(4, "big")'
logged 'e["values"][0][2] == b"http://example.org/a".hex() and e["values"][0][3] == 0x0e'

run create-exists 1 create "${SEC[@]}" 88.100.1/a 'URL=http://x/'
grep -q 'HANDLE_ALREADY_EXISTS (101)' "$TMP/err" || fail "create-exists message: $(cat "$TMP/err")"
run create-overwrite 0 create "${SEC[@]}" --overwrite 88.100.1/a 'URL=http://example.org/a' \
	'2:EMAIL=a@example.org' '7:DESC=seven' '300:HS_SECKEY=@'"$TMP/secret"
logged 'e["opflags"] & 0x00400000 and e["values"][3] == [300, "HS_SECKEY", b"secret\n".hex(), 0x0c]'

# add: the automatic index skips what a resolution shows (1, 2, 7; 300 is not public)
run add 0 add "${SEC[@]}" --same-conn 88.100.1/a 'URL.alt=http://example.org/alt'
logged 'e["op"] == 102 and e["conn"] == "same" and [v[0] for v in e["values"]] == [3]'
run add-clash 1 add "${SEC[@]}" 88.100.1/a '300:DESC=x'
grep -q 'VALUE_ALREADY_EXISTS' "$TMP/err" || fail "add clash reported: $(cat "$TMP/err")"
run modify 0 modify "${SEC[@]}" 88.100.1/a '2:EMAIL=b@example.org'
logged 'e["op"] == 104 and e["values"] == [[2, "EMAIL", b"b@example.org".hex(), 0x0e]]'
run modify-noindex 2 modify "${SEC[@]}" 88.100.1/a 'EMAIL=b@example.org'
run remove 0 remove "${SEC[@]}" 88.100.1/a 2,7 3
logged 'e["op"] == 103 and e["indexes"] == [2, 7, 3]'

# ---- list, home, unhome ----------------------------------------------------------------------
run create-b 0 create "${SEC[@]}" 88.100.1/b 'URL=http://example.org/b'
# no HS_ADMIN given: one for the --auth identity is added at index 100 (else nobody could modify)
logged '[v[:2] for v in e["values"]] == [[1, "URL"], [100, "HS_ADMIN"]]'
logged 'bytes.fromhex(e["values"][1][2]) == b"\x0f\xff" + b"\x00\x00\x00\x0b0.NA/88.100" + (300).to_bytes(4, "big")'
run create-c 0 create "${SEC[@]}" --no-admin 88.100.1/c '[{"index":1,"type":"URL","data":"http://example.org/c"}]'
logged '[v[0] for v in e["values"]] == [1]'
run list 0 list "${SEC[@]}" 88.100.1
[ "$(cat "$TMP/out")" = "$(printf '88.100.1/A\n88.100.1/B\n88.100.1/C')" ] ||
	fail "list: $(cat "$TMP/out")"
logged 'e["op"] == 105 and e["handle"] == "0.NA/88.100.1"'
run home 0 home "${SEC[@]}" 88.200
logged 'e["op"] == 300 and e["handle"] == "0.NA/88.200"'
run unhome 0 unhome "${SEC[@]}" 0.NA/88.200
logged 'e["op"] == 301 and e["handle"] == "0.NA/88.200"'

# ---- HS_PUBKEY: PEM, encrypted PEM (passphrase from a file, from the environment), CNRI ------
PUB=(-s "$SERVER" --auth "$PUB_ID" --privkey "$TMP/adm.pem")
run pubkey 0 delete "${PUB[@]}" 88.100.1/c
logged 'e["op"] == 101 and e["auth"] == "HS_PUBKEY" and e["alg"] == "SHA-256" and e["ok"]'
printf 'pass phrase\n' >"$TMP/pass"
openssl pkcs8 -topk8 -in "$TMP/adm.pem" -v2 aes-256-cbc -passout "file:$TMP/pass" \
	-out "$TMP/adm-enc.pem" 2>/dev/null || fail "openssl pkcs8"
run pubkey-enc 0 delete -s "$SERVER" --auth "$PUB_ID" --privkey "$TMP/adm-enc.pem" \
	--passphrase-file "$TMP/pass" 88.100.1/b
IDNODE_PASSPHRASE='pass phrase' run pubkey-env 1 delete -s "$SERVER" --auth "$PUB_ID" \
	--privkey "$TMP/adm-enc.pem" 88.100.1/b
grep -q 'HANDLE_NOT_FOUND (100)' "$TMP/err" || fail "delete twice: $(cat "$TMP/err")"
printf 'nope\n' >"$TMP/badpass"
run pubkey-badpass 4 delete -s "$SERVER" --auth "$PUB_ID" --privkey "$TMP/adm-enc.pem" \
	--passphrase-file "$TMP/badpass" 88.100.1/b
grep -q 'passphrase' "$TMP/err" || fail "bad passphrase message: $(cat "$TMP/err")"
run pubkey-nopass 4 delete -s "$SERVER" --auth "$PUB_ID" --privkey "$TMP/adm-enc.pem" \
	88.100.1/b
# the CNRI private key files of the HS_PUBKEY captures (plain, and encrypted as hdllib does)
if [ -n "$LOG" ] || [ -n "${HDL_ADMIN_CNRI_ID:-}" ]; then
	run cnri-key 0 create -s "$SERVER" --auth "$CNRI_ID" \
		--privkey "$SRC/tests/data/admpriv.bin" 88.100.1/k 'URL=http://example.org/k'
	logged 'e["op"] == 100 and e["auth"] == "HS_PUBKEY" and e["ok"]'
	IDNODE_PASSPHRASE=$(printf 'p\303\244sswort') run cnri-aes 0 delete -s "$SERVER" \
		--auth "$CNRI_ID" --privkey "$SRC/tests/data/admpriv-aes.bin" 88.100.1/k
	logged 'e["op"] == 101 and e["auth"] == "HS_PUBKEY" and e["ok"]'
	"$IDNODE" keygen --cnri --dsa --passphrase-file "$TMP/pass" --out-priv "$TMP/cnri.bin" \
		--out-pub "$TMP/cnri.pub" >/dev/null || fail "keygen --cnri"
	head -c 4 "$TMP/cnri.bin" | od -An -tx1 | grep -q '00 00 00 04' || fail "keygen --cnri type 4"
	# a DSA key the server does not know: signed, sent, refused
	run cnri-dsa 1 delete -s "$SERVER" --auth "$CNRI_ID" --privkey "$TMP/cnri.bin" \
		--passphrase-file "$TMP/pass" 88.100.1/k
	logged 'e["auth"] == "HS_PUBKEY" and e["alg"] == "SHA-256" and not e["ok"]'
fi

# ---- IDIS login session ----------------------------------------------------------------------
run session 0 create "${SEC[@]}" --session 88.100.1/s 'URL=http://example.org/s'
logged 'lines[-2]["op"] == 2001 and lines[-2]["ok"] and lines[-2]["conn"] == "same"'
logged 'e["op"] == 100 and e["challenged"] is False and e["session"] == lines[-2]["session"]'

# ---- refusals --------------------------------------------------------------------------------
run wrong-secret 1 delete -s "$SERVER" --auth 300:0.NA/88.100 --seckey-file "$TMP/wrong" 88.100.1/s
grep -q 'AUTHENTICATION_FAILED (403)' "$TMP/err" || fail "wrong secret: $(cat "$TMP/err")"
run wrong-login 1 delete -s "$SERVER" --auth 300:0.NA/88.100 --seckey-file "$TMP/wrong" --session \
	88.100.1/s
grep -q 'login refused' "$TMP/err" || fail "refused login: $(cat "$TMP/err")"
if [ -n "$LOG" ]; then
	n=$(wc -l <"$LOG")
	run bad-digest 4 delete "${SEC[@]}" 88.100.1/bad-digest
	grep -q 'HDL_EDIGEST' "$TMP/err" || fail "bad digest: $(cat "$TMP/err")"
	[ "$(wc -l <"$LOG")" = "$n" ] || fail "an answer was sent to a challenge for another request"
	run busy 1 delete "${SEC[@]}" 88.100.1/busy
	grep -q 'SERVER_TOO_BUSY (3)' "$TMP/err" || fail "busy: $(cat "$TMP/err")"
fi

# ---- usage and I/O errors --------------------------------------------------------------------
run no-auth 2 delete -s "$SERVER" --seckey-file "$TMP/secret" 88.100.1/a
run bad-auth 2 delete -s "$SERVER" --auth 0.NA/88.100 --seckey-file "$TMP/secret" 88.100.1/a
run two-creds 2 delete -s "$SERVER" --auth 300:0.NA/88.100 --seckey-file "$TMP/secret" \
	--privkey "$TMP/adm.pem" 88.100.1/a
run no-cred 2 delete -s "$SERVER" --auth 300:0.NA/88.100 88.100.1/a
run mint-delete 2 delete "${SEC[@]}" --mint 88.100.1/a
run noadmin-add 2 add "${SEC[@]}" --no-admin 88.100.1/a 'URL=x'
run bad-value 2 create "${SEC[@]}" 88.100.1/z 'no-equals-sign'
run bad-json 2 create "${SEC[@]}" 88.100.1/z '{"type":"URL"}'
run dup-index 2 create "${SEC[@]}" 88.100.1/z '1:URL=a' '1:EMAIL=b'
run bad-admin 2 create "${SEC[@]}" 88.100.1/z 'HS_ADMIN=0.NA/88.100'
run bad-remove 2 remove "${SEC[@]}" 88.100.1/a x
run extra-arg 2 delete "${SEC[@]}" 88.100.1/a 88.100.1/b
run missing-seckey 3 delete -s "$SERVER" --auth 300:0.NA/88.100 --seckey-file "$TMP/none" 88.100.1/a
run garbage-key 4 delete -s "$SERVER" --auth 300:0.NA/88.100 --privkey "$TMP/secret" 88.100.1/a
run refused 3 delete -s 127.0.0.1:1 --auth 300:0.NA/88.100 --seckey-file "$TMP/secret" 88.100.1/a
run help 0 create --help
grep -q 'EXIT STATUS' "$TMP/out" && grep -qF '[INDEX:]TYPE=DATA' "$TMP/out" || fail "create --help"
run keygen-help 0 keygen --help
run keygen-bad 2 keygen --rsa 512
for c in delete add modify remove list home unhome; do
	run "$c-help" 0 "$c" --help
done

finish test_cli_admin
