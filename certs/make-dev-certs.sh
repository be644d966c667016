#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Development TLS material for idnode's upstream connections and their tests. DEVELOPMENT ONLY:
# the keys are unencrypted, the CA is throw-away, nothing made here belongs in production or in git.
#
# Usage: certs/make-dev-certs.sh OUTDIR [NAME...]
#   NAME: extra subjectAltName of the server certificate, a DNS name or an IPv4/IPv6 address
#         (localhost, 127.0.0.1 and ::1 are always there).
# Writes into OUTDIR (created if missing, files replaced):
#   ca.pem ca.key                 a development CA (EC P-256, 30 days)
#   server.pem server.key         server certificate signed by the CA (serverAuth, SANs above)
#   server.pin                    "sha256:BASE64" SPKI pin of server.key (for pin=)
#   client.pem client.key         client certificate signed by the CA (clientAuth, CN idnode-dev-client)
#   expired.pem expired.key       a server certificate with the same SANs that expired in 2020
# Keys are mode 0600. Needs openssl(1) 3.x.
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:0:1}" = "-" ]; then
	echo "usage: $0 OUTDIR [NAME...]" >&2
	exit 2
fi
out=$1
shift

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in "$@"; do
	if [[ $n =~ ^[0-9.]+$ || $n =~ ^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$ ]]; then
		san+=",IP:$n"
	elif [[ $n =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
		san+=",DNS:$n"
	else
		echo "$0: '$n' is neither a DNS name nor an IP address" >&2
		exit 2
	fi
done

mkdir -p "$out"
umask 077
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

# the CA
openssl req -x509 "${newkey[@]}" -keyout "$out/ca.key" -out "$out/ca.pem" -days 30 \
	-subj "/O=idnode development/CN=idnode dev CA $(date +%s)-$$" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$work/log" || { cat "$work/log" >&2; exit 1; }

# leaf: NAME CN EKU [signing options...]
leaf() {
	local name=$1 cn=$2 eku=$3
	shift 3
	local ext=(-addext "basicConstraints=critical,CA:FALSE"
		-addext "keyUsage=critical,digitalSignature,keyEncipherment"
		-addext "extendedKeyUsage=$eku")
	[ "$eku" = serverAuth ] && ext+=(-addext "subjectAltName=$san")
	openssl req -new "${newkey[@]}" -keyout "$out/$name.key" -out "$work/$name.csr" \
		-subj "/O=idnode development/CN=$cn" "${ext[@]}" 2>>"$work/log" ||
		{ cat "$work/log" >&2; exit 1; }
	"$@" -in "$work/$name.csr" -out "$out/$name.pem" 2>>"$work/log" ||
		{ cat "$work/log" >&2; exit 1; }
}
sign=(openssl x509 -req -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial -days 30
	-copy_extensions copyall -sha256)
leaf server localhost serverAuth "${sign[@]}"
leaf client idnode-dev-client clientAuth "${sign[@]}"

# an expired server certificate: openssl x509 cannot backdate, openssl ca can
cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = dev
[dev]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF
: >"$work/index.txt"
echo 1000 >"$work/serial"
leaf expired localhost serverAuth openssl ca -batch -notext -config "$work/ca.cnf" \
	-cert "$out/ca.pem" -keyfile "$out/ca.key" \
	-startdate 20200101000000Z -enddate 20200102000000Z

# the SPKI pin of the server key: SHA-256 of its DER SubjectPublicKeyInfo, base64
pin=$(openssl pkey -in "$out/server.key" -pubout -outform DER | openssl dgst -sha256 -binary |
	openssl base64 -A)
echo "sha256:$pin" >"$out/server.pin"

rm -f "$out/ca.srl"
chmod 0644 "$out"/*.pem "$out/server.pin"
chmod 0600 "$out"/*.key
echo "development certificates in $out (not for production)"
