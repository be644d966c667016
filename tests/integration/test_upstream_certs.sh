#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# certs/make-dev-certs.sh (what it writes, names, validity, modes, the pin, a mutual-TLS handshake
# on loopback with them) and `idnoded -t` on configurations with upstream / forward / dns_server
# lines (accepted, and each kind of mistake refused with a reason).
set -euo pipefail

src=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bld=${HDL_BUILD_DIR:-$src/build}
idnoded=$bld/idnoded
mk=$src/certs/make-dev-certs.sh
[ -x "$idnoded" ] || { echo "missing $idnoded" >&2; exit 1; }

tmp=$(mktemp -d /tmp/test_upstream_certs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # check "description" command...
	local d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
status() {
	set +e
	"$@" >"$tmp/out" 2>&1
	echo $?
	set -e
}

# --- make-dev-certs.sh ---------------------------------------------------------------------
d=$tmp/dev
check "script runs" bash "$mk" "$d" upstream.test 192.0.2.7 2001:db8::9
for f in ca.pem ca.key server.pem server.key server.pin client.pem client.key expired.pem \
	expired.key; do
	check "writes $f" test -s "$d/$f"
done
check "nothing else left in OUTDIR" test "$(ls -A "$d" | wc -l)" -eq 9
check "keys are 0600" test "$(stat -c %a "$d/server.key" "$d/client.key" "$d/ca.key" |
	sort -u)" = 600
check "server chains to the CA" openssl verify -CAfile "$d/ca.pem" "$d/server.pem"
check "client chains to the CA" openssl verify -CAfile "$d/ca.pem" "$d/client.pem"
check "expired one is refused as expired" \
	bash -c "! openssl verify -CAfile '$d/ca.pem' '$d/expired.pem' 2>&1 | grep -q ': OK' &&
		openssl verify -CAfile '$d/ca.pem' '$d/expired.pem' 2>&1 | grep -q 'expired'"
san=$(openssl x509 -in "$d/server.pem" -noout -ext subjectAltName)
for n in DNS:localhost "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1" DNS:upstream.test \
	"IP Address:192.0.2.7" "IP Address:2001:DB8:0:0:0:0:0:9"; do
	check "server SAN has $n" grep -qi "$n" <<<"$san"
done
check "server is for serverAuth" bash -c "openssl x509 -in '$d/server.pem' -noout \
	-ext extendedKeyUsage | grep -q 'Server Authentication'"
check "client is for clientAuth" bash -c "openssl x509 -in '$d/client.pem' -noout \
	-ext extendedKeyUsage | grep -q 'Client Authentication'"
pin=$(openssl x509 -in "$d/server.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -binary | openssl base64 -A)
check "server.pin is the SPKI SHA-256 of server.pem" test "$(cat "$d/server.pin")" = "sha256:$pin"
check "a second run makes a new CA" bash -c "bash '$mk' '$tmp/dev2' >/dev/null &&
	! cmp -s '$d/ca.pem' '$tmp/dev2/ca.pem'"
check "a certificate of one CA does not verify with the other" \
	bash -c "! openssl verify -CAfile '$tmp/dev2/ca.pem' '$d/server.pem' >/dev/null 2>&1"
check "usage error without OUTDIR" test "$(status bash "$mk")" -eq 2
check "a bad name is refused, nothing written" bash -c "test \"\$(bash '$mk' '$tmp/x' 'bad name' \
	>/dev/null 2>&1; echo \$?)\" -eq 2 && test ! -e '$tmp/x'"

# mutual TLS on loopback with these files (Python's ssl module as the other side)
if python3 - "$d" <<'EOF'; then ok "mutual TLS handshake with the dev certificates"; else bad "mutual TLS handshake with the dev certificates"; fi
import socket, ssl, sys, threading
d = sys.argv[1]
srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
srv.load_cert_chain(d + "/server.pem", d + "/server.key")
srv.load_verify_locations(d + "/ca.pem")
srv.verify_mode = ssl.CERT_REQUIRED
cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cli.load_verify_locations(d + "/ca.pem")
cli.load_cert_chain(d + "/client.pem", d + "/client.key")
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
ls.settimeout(10)
port = ls.getsockname()[1]
got = {}
def serve():
    c, _ = ls.accept()
    with srv.wrap_socket(c, server_side=True) as s:
        got["peer"] = s.getpeercert()["subject"]
        s.sendall(s.recv(16))
t = threading.Thread(target=serve)
t.start()
with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
    with cli.wrap_socket(c, server_hostname="localhost") as s:
        s.sendall(b"ping")
        assert s.recv(16) == b"ping"
t.join(10)
assert any(("commonName", "idnode-dev-client") in rdn for rdn in got["peer"]), got
# and the expired certificate is refused by a verifying client
srv2 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
srv2.load_cert_chain(d + "/expired.pem", d + "/expired.key")
def serve2():
    c, _ = ls.accept()
    try:
        srv2.wrap_socket(c, server_side=True).close()
    except (ssl.SSLError, OSError):
        pass
t = threading.Thread(target=serve2)
t.start()
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        cli.wrap_socket(c, server_hostname="localhost")
    sys.exit("expired certificate accepted")
except ssl.SSLCertVerificationError as e:
    assert "expired" in str(e), e
t.join(10)
EOF

# --- idnoded -t with upstream lines --------------------------------------------------------
base_conf() {
	printf 'listen = 127.0.0.1:2641\ndb = %s/db\n' "$tmp"
}
conf_ok() { # conf_ok "description" lines...
	local desc=$1
	shift
	{ base_conf; printf '%s\n' "$@"; } >"$tmp/c.conf"
	check "idnoded -t accepts: $desc" test "$(status "$idnoded" -t -c "$tmp/c.conf")" -eq 0
}
conf_bad() { # conf_bad "description" "expected text" lines...
	local desc=$1 want=$2
	shift 2
	{ base_conf; printf '%s\n' "$@"; } >"$tmp/c.conf"
	local rc
	rc=$(status "$idnoded" -t -c "$tmp/c.conf")
	if [ "$rc" -ne 0 ] && grep -q -- "$want" "$tmp/out"; then
		ok "idnoded -t refuses: $desc"
	else
		bad "idnoded -t refuses: $desc (rc $rc: $(cat "$tmp/out"))"
	fi
}
conf_ok "a TLS upstream with CA, client certificate, pin and a forward rule" \
	"upstream = top 127.0.0.1:2642 transport=tls sni=upstream.test ca=$d/ca.pem cert=$d/client.pem key=$d/client.key pin=$(cat "$d/server.pin")" \
	"upstream = old [::1]:2641 transport=udp" \
	"forward = 88 top old" "forward = * old" "dns_server = 127.0.0.1:53" \
	"upstream_max_conns = 16" "upstream_max_reply = 64k"
conf_ok "a host name and verify=no" "upstream = p upstream.test:8000 transport=https verify=no"
conf_bad "a pin that is not 32 bytes" "pin" "upstream = top 127.0.0.1:2642 pin=sha256:AAAA"
conf_bad "a CA file that cannot be read" "cannot read" \
	"upstream = top 127.0.0.1:2642 ca=$tmp/nonexistent.pem"
conf_bad "TLS options on a plain transport" "need transport=tls" \
	"upstream = top 127.0.0.1:2641 transport=tcp ca=$d/ca.pem"
conf_bad "a forward rule naming no upstream" "no upstream named" \
	"upstream = top 127.0.0.1:2642" "forward = 88 nobody"
conf_bad "two upstreams of one name" "used twice" \
	"upstream = top 127.0.0.1:2642" "upstream = top 127.0.0.1:2643"
conf_bad "two rules for one prefix" "two rules" \
	"upstream = top 127.0.0.1:2642" "forward = 88 top" "forward = 88 top"
conf_bad "a certificate without its key" "cert= and key=" \
	"upstream = top 127.0.0.1:2642 cert=$d/client.pem"
conf_bad "an unknown option" "not an option" "upstream = top 127.0.0.1:2642 colour=blue"
conf_bad "a DNS server by name" "ADDR:PORT" "dns_server = resolver.example:53"
conf_bad "a zero limit" "out of range" "upstream_max_queries = 0"

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
